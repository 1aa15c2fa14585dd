//! Per-image transforms: resizing, the training augmentation (random crop with zero padding,
//! horizontal flip) and per-channel normalisation into f32. They work on one C×H×W u8 image
//! at a time so the batch loader can run them on its own thread.

use rayon::prelude::*;

use super::rng::SplitMix64;
use super::{Dataset, Shape};

/// Per-channel mean and standard deviation on the 0..1 scale; a batch value is
/// `(pixel / 255 - mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// Statistics of `train`'s pixels. Compute them on the training split only and reuse them
    /// for validation and test, so no information flows back from held-out data.
    pub fn from_dataset(train: &Dataset) -> Normalize {
        let shape = train.shape();
        let plane = shape.height * shape.width;
        let mut sums = vec![(0u64, 0u64); shape.channels];
        for img in train.pixels().chunks_exact(shape.numel().max(1)) {
            for (c, px) in img.chunks_exact(plane).enumerate() {
                sums[c].0 += px.iter().map(|&p| p as u64).sum::<u64>();
                sums[c].1 += px.iter().map(|&p| (p as u64) * (p as u64)).sum::<u64>();
            }
        }
        let n = (train.len() * plane).max(1) as f64;
        let (mean, std) = sums
            .iter()
            .map(|&(s, s2)| {
                let m = s as f64 / n;
                let var = (s2 as f64 / n - m * m).max(0.0);
                // A constant channel would divide by zero; one grey level is a harmless floor.
                ((m / 255.0) as f32, (var.sqrt() / 255.0).max(1.0 / 255.0) as f32)
            })
            .unzip();
        Normalize { mean, std }
    }

    /// Only scales to 0..1 (mean 0, std 1).
    pub fn identity(channels: usize) -> Normalize {
        Normalize { mean: vec![0.0; channels], std: vec![1.0; channels] }
    }

    /// `(scale, bias)` per channel so that a value is `pixel * scale + bias`.
    fn affine(&self) -> Vec<(f32, f32)> {
        self.mean.iter().zip(&self.std).map(|(&m, &s)| (1.0 / (255.0 * s), -m / s)).collect()
    }
}

/// Training-time augmentation. `crop_pad` 0 and `hflip` false (the `Default`) is no augmentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Pad every side with this many zero pixels, then crop back to the original size at a
    /// random offset.
    pub crop_pad: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    pub const NONE: Augment = Augment { crop_pad: 0, hflip: false };

    pub fn is_none(&self) -> bool {
        *self == Augment::NONE
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    Nearest,
    /// Pixel-centre aligned, as PIL and `align_corners=False` do.
    Bilinear,
}

/// Resample images to `height`×`width`, e.g. to fine-tune at a larger resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    pub height: usize,
    pub width: usize,
    pub interp: Interp,
}

impl Resize {
    pub fn output(&self, shape: Shape) -> Shape {
        Shape::new(shape.channels, self.height, self.width)
    }
}

/// One C×H×W image resampled; channels are independent.
pub fn resize_image(src: &[u8], shape: Shape, r: Resize) -> Vec<u8> {
    let (h, w) = (shape.height, shape.width);
    let mut out = Vec::with_capacity(shape.channels * r.height * r.width);
    let ys: Vec<Tap> = (0..r.height).map(|y| Tap::new(y, r.height, h, r.interp)).collect();
    let xs: Vec<Tap> = (0..r.width).map(|x| Tap::new(x, r.width, w, r.interp)).collect();
    for plane in src.chunks_exact(h * w) {
        for ty in &ys {
            let (r0, r1) = (&plane[ty.i0 * w..][..w], &plane[ty.i1 * w..][..w]);
            for tx in &xs {
                let top = r0[tx.i0] as f32 * (1.0 - tx.f) + r0[tx.i1] as f32 * tx.f;
                let bottom = r1[tx.i0] as f32 * (1.0 - tx.f) + r1[tx.i1] as f32 * tx.f;
                out.push((top * (1.0 - ty.f) + bottom * ty.f).round() as u8);
            }
        }
    }
    out
}

/// Source positions and weight for one output coordinate: `(1 - f) * src[i0] + f * src[i1]`.
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

impl Tap {
    fn new(o: usize, out_len: usize, in_len: usize, interp: Interp) -> Tap {
        let scale = in_len as f32 / out_len as f32;
        match interp {
            Interp::Nearest => {
                let i = (((o as f32 + 0.5) * scale) as usize).min(in_len - 1);
                Tap { i0: i, i1: i, f: 0.0 }
            }
            Interp::Bilinear => {
                let pos = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (pos as usize).min(in_len - 1);
                Tap { i0, i1: (i0 + 1).min(in_len - 1), f: pos - i0 as f32 }
            }
        }
    }
}

impl Dataset {
    /// Every image resampled (in parallel). Loaders use it for a load resolution; for training
    /// at a large size prefer `LoaderConfig::resize`, which keeps memory at the native size.
    pub fn resized(&self, r: Resize) -> Dataset {
        let shape = self.shape();
        let pixels = self.pixels().par_chunks_exact(shape.numel()).flat_map_iter(|img| resize_image(img, shape, r));
        Dataset::new(pixels.collect(), self.labels().to_vec(), self.classes().to_vec(), r.output(shape))
    }
}

/// Writes one image, augmented with `rng` then normalised, into `out` (C×H×W f32).
/// Out-of-image pixels of a padded crop are 0, i.e. black before normalisation, as in
/// torchvision's `RandomCrop(padding=p)`.
pub(crate) fn write_sample(
    img: &[u8],
    shape: Shape,
    aug: Augment,
    rng: &mut SplitMix64,
    norm: &Normalize,
    out: &mut [f32],
) {
    let (h, w, p) = (shape.height, shape.width, aug.crop_pad);
    let dy = rng.below(2 * p + 1);
    let dx = rng.below(2 * p + 1);
    let flip = aug.hflip && rng.below(2) == 1;
    let source = |o: usize, d: usize, len: usize| (o + d).checked_sub(p).filter(|&s| s < len);
    let cols: Vec<Option<usize>> = (0..w).map(|x| source(if flip { w - 1 - x } else { x }, dx, w)).collect();
    let planes = img.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w));
    for (&(scale, bias), (src, dst)) in norm.affine().iter().zip(planes) {
        for (y, row) in dst.chunks_exact_mut(w).enumerate() {
            let src_row = source(y, dy, h).map(|sy| &src[sy * w..][..w]);
            for (v, col) in row.iter_mut().zip(&cols) {
                let px = match (src_row, col) {
                    (Some(r), Some(sx)) => r[*sx],
                    _ => 0,
                };
                *v = px as f32 * scale + bias;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(shape: Shape) -> Vec<u8> {
        (0..shape.numel()).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn normalise_stats_match_a_direct_computation() {
        let shape = Shape::new(2, 2, 2);
        let d = Dataset::new(vec![0, 0, 255, 255, 10, 10, 10, 10], vec![0], vec!["a".to_string()], shape);
        let n = Normalize::from_dataset(&d);
        assert!((n.mean[0] - 0.5).abs() < 1e-6 && (n.std[0] - 0.5).abs() < 1e-6);
        assert!((n.mean[1] - 10.0 / 255.0).abs() < 1e-6 && (n.std[1] - 1.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn no_augmentation_is_plain_normalisation() {
        let shape = Shape::new(3, 4, 5);
        let img = gradient(shape);
        let mut out = vec![0.0; shape.numel()];
        let norm = Normalize { mean: vec![0.5; 3], std: vec![0.25; 3] };
        write_sample(&img, shape, Augment::NONE, &mut SplitMix64::new(1), &norm, &mut out);
        for (o, &p) in out.iter().zip(&img) {
            assert!((o - (p as f32 / 255.0 - 0.5) / 0.25).abs() < 1e-5);
        }
    }

    #[test]
    fn crop_keeps_shape_shifts_content_and_pads_with_zero() {
        let shape = Shape::new(1, 8, 8);
        let img = vec![200u8; shape.numel()];
        let aug = Augment { crop_pad: 2, hflip: true };
        let norm = Normalize::identity(1);
        let mut saw_padding = false;
        for seed in 0..20 {
            let mut out = vec![-1.0; shape.numel()];
            write_sample(&img, shape, aug, &mut SplitMix64::new(seed), &norm, &mut out);
            assert!(out.iter().all(|&v| v == 0.0 || (v - 200.0 / 255.0).abs() < 1e-6));
            let zeros = out.iter().filter(|&&v| v == 0.0).count();
            assert!(zeros <= 8 * 8 - 6 * 6);
            saw_padding |= zeros > 0;
        }
        assert!(saw_padding);
    }

    #[test]
    fn flip_mirrors_rows() {
        let shape = Shape::new(1, 1, 4);
        let img = [1u8, 2, 3, 4];
        let aug = Augment { crop_pad: 0, hflip: true };
        let outs: Vec<Vec<f32>> = (0..16)
            .map(|seed| {
                let mut out = vec![0.0; 4];
                write_sample(&img, shape, aug, &mut SplitMix64::new(seed), &Normalize::identity(1), &mut out);
                out.iter().map(|v| v * 255.0).map(f32::round).collect()
            })
            .collect();
        assert!(outs.contains(&vec![1.0, 2.0, 3.0, 4.0]));
        assert!(outs.contains(&vec![4.0, 3.0, 2.0, 1.0]));
    }

    #[test]
    fn resize_shapes_and_values() {
        let shape = Shape::new(1, 2, 2);
        let img = [0u8, 100, 200, 250];
        let near = resize_image(&img, shape, Resize { height: 4, width: 4, interp: Interp::Nearest });
        assert_eq!(near, vec![0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 250, 250, 200, 200, 250, 250]);
        let bil = resize_image(&img, shape, Resize { height: 4, width: 4, interp: Interp::Bilinear });
        assert_eq!(bil.len(), 16);
        assert_eq!((bil[0], bil[1], bil[15]), (0, 25, 250));
        let same = resize_image(&img, shape, Resize { height: 2, width: 2, interp: Interp::Bilinear });
        assert_eq!(same, img);
        let d = Dataset::new(img.to_vec(), vec![0], vec!["a".to_string()], shape);
        let big = d.resized(Resize { height: 3, width: 5, interp: Interp::Bilinear });
        assert_eq!((big.shape(), big.len()), (Shape::new(1, 3, 5), 1));
    }
}
