//! Small synthetic data sets written in each on-disk format, for the loaders' tests. Pixel
//! values come from a seeded stream, so every fixture is the same on every run.

use std::path::Path;

use super::cifar::CIFAR10_CLASSES;
use super::idx::{encode_images, encode_labels, gzip};
use super::rng::SplitMix64;
use super::{Dataset, Shape};

/// `n` random images of `shape` with labels cycling through `classes`.
pub(crate) fn random(n: usize, shape: Shape, classes: &[&str], seed: u64) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let pixels = (0..n * shape.numel()).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|i| (i % classes.len()) as u32).collect();
    Dataset::new(pixels, labels, classes.iter().map(|c| c.to_string()).collect::<Vec<_>>(), shape)
}

/// Batches 1, 2 and 10 (10 sorts before 2 by name, not by number) plus a test batch.
pub(crate) fn write_cifar(dir: &Path) -> (Dataset, Dataset) {
    let write = |name: &str, d: &Dataset| {
        let labels: Vec<u8> = d.labels().iter().map(|&l| l as u8).collect();
        testkit::cifar::write_batch(&dir.join(name), &labels, d.pixels());
    };
    let shape = Shape::new(3, 32, 32);
    let train = random(30, shape, &CIFAR10_CLASSES, 1);
    for (k, n) in [1, 2, 10].iter().enumerate() {
        write(&format!("data_batch_{n}.bin"), &train.select(&(k * 10..k * 10 + 10).collect::<Vec<_>>()));
    }
    let test = random(20, shape, &CIFAR10_CLASSES, 2);
    write("test_batch.bin", &test);
    (train, test)
}

/// MNIST-named IDX files, gzipped or not, four classes named "0".."3".
pub(crate) fn write_idx(dir: &Path, gz: bool) -> (Dataset, Dataset) {
    let shape = Shape::new(1, 7, 5);
    let classes = ["0", "1", "2", "3"];
    let (train, test) = (random(24, shape, &classes, 3), random(8, shape, &classes, 4));
    let write = |name: &str, bytes: Vec<u8>| {
        let (name, bytes) = if gz { (format!("{name}.gz"), gzip(&bytes)) } else { (name.to_string(), bytes) };
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    write("train-images-idx3-ubyte", encode_images(train.pixels(), shape));
    write("train-labels-idx1-ubyte", encode_labels(train.labels()));
    write("t10k-images-idx3-ubyte", encode_images(test.pixels(), shape));
    write("t10k-labels-idx1-ubyte", encode_labels(test.labels()));
    (train, test)
}

/// Three classes of 8x6 RGB images: train as PNG (4 per class), test as JPEG (3 per class).
pub(crate) fn write_folder(dir: &Path) -> (Dataset, Dataset) {
    let shape = Shape::new(3, 8, 6);
    let classes = ["cat", "dog", "emu"];
    let by_class = |d: Dataset| {
        let mut order: Vec<usize> = (0..d.len()).collect();
        order.sort_by_key(|&i| d.labels()[i]);
        d.select(&order)
    };
    let (train, test) = (by_class(random(12, shape, &classes, 5)), by_class(random(9, shape, &classes, 6)));
    for (split, data, ext) in [("train", &train, "png"), ("test", &test, "jpg")] {
        for i in 0..data.len() {
            let class_dir = dir.join(split).join(classes[data.labels()[i] as usize]);
            std::fs::create_dir_all(&class_dir).unwrap();
            let img = data.image(i);
            let plane = shape.height * shape.width;
            let hwc = (0..plane).flat_map(|p| (0..3).map(move |c| img[c * plane + p])).collect();
            let rgb = image::RgbImage::from_raw(6, 8, hwc).unwrap();
            rgb.save(class_dir.join(format!("{i:03}.{ext}"))).unwrap();
        }
    }
    (train, test)
}
