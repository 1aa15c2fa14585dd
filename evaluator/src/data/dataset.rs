//! `Dataset`: one split held in memory as raw u8 pixels (N×C×H×W), labels and class names.
//! Pixels stay u8 until a batch is built, so 50k CIFAR images cost 150 MB, not 600 MB.

use std::fmt;
use std::sync::Arc;

/// Channels, height and width of every image in a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Shape { channels, height, width }
    }

    /// Bytes (= values) per image.
    pub fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Images, labels and class names of one split. Cheap to clone the class list; pixels are owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u32>,
    classes: Arc<[String]>,
    shape: Shape,
}

impl Dataset {
    /// # Panics
    /// If `pixels` is not `labels.len()` images of `shape`, or a label is not a class index:
    /// loaders check files before building one, so this is a programming error.
    pub fn new(pixels: Vec<u8>, labels: Vec<u32>, classes: impl Into<Arc<[String]>>, shape: Shape) -> Self {
        let classes = classes.into();
        assert_eq!(
            pixels.len(),
            labels.len() * shape.numel(),
            "pixels do not match {} images of {shape}",
            labels.len()
        );
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes.len()) {
            panic!("label {bad} out of range for {} classes", classes.len());
        }
        Dataset { pixels, labels, classes, shape }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// All pixels, image after image, each C×H×W.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The C×H×W pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.numel();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Samples per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new data set of the given samples, in the given order (indices may repeat).
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.shape.numel());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Dataset { pixels, labels, classes: self.classes.clone(), shape: self.shape }
    }

    /// A 16-hex-digit hash of shape, class names, every label, the sum of all pixels and a
    /// strided sample of them: enough to tell data sets apart in a run config without hashing
    /// gigabytes. FNV-1a, so the value is stable across Rust versions and platforms.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", self.fingerprint_u64())
    }

    pub(crate) fn fingerprint_u64(&self) -> u64 {
        let mut h = Fnv::default();
        for dim in [self.shape.channels, self.shape.height, self.shape.width, self.len()] {
            h.write(&(dim as u64).to_le_bytes());
        }
        for name in self.classes.iter() {
            h.write(name.as_bytes());
            h.write(&[0]);
        }
        for &l in &self.labels {
            h.write(&l.to_le_bytes());
        }
        let sum: u64 = self.pixels.iter().map(|&p| p as u64).sum();
        h.write(&sum.to_le_bytes());
        let stride = self.pixels.len() / 65_536 + 1;
        h.write(&self.pixels.iter().step_by(stride).copied().collect::<Vec<u8>>());
        h.0
    }
}

/// 64-bit FNV-1a.
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let classes: Vec<String> = vec!["a".into(), "b".into()];
        Dataset::new((0..12).collect(), vec![0, 1, 1], classes, Shape::new(1, 2, 2))
    }

    #[test]
    fn select_copies_images_and_labels() {
        let d = tiny();
        let s = d.select(&[2, 0]);
        assert_eq!(s.labels(), &[1, 0]);
        assert_eq!(s.image(0), &[8, 9, 10, 11]);
        assert_eq!(s.class_counts(), vec![1, 1]);
    }

    #[test]
    fn fingerprint_sees_pixels_and_labels() {
        let d = tiny();
        let mut pixels = d.pixels().to_vec();
        pixels[5] += 1;
        let changed = Dataset::new(pixels, d.labels().to_vec(), d.classes().to_vec(), d.shape());
        assert_ne!(d.fingerprint(), changed.fingerprint());
        assert_ne!(d.fingerprint(), d.select(&[0, 2, 1]).fingerprint());
        assert_eq!(d.fingerprint(), d.clone().fingerprint());
        assert_eq!(d.fingerprint().len(), 16);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn rejects_labels_beyond_classes() {
        Dataset::new(vec![0; 4], vec![2], vec!["a".to_string()], Shape::new(1, 2, 2));
    }
}
