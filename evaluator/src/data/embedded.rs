//! The embedded default data set: a seeded, class-balanced subset of Fashion-MNIST (MIT,
//! Zalando SE) compiled into the binary, so `nas search` works on a fresh clone with no
//! download. How it was made, and its licence, are in `evaluator/data/fashion-mnist/`.

use std::path::Path;

use super::idx::{gunzip_if_needed, parse_images, parse_labels};
use super::{DataError, Dataset};

/// Fashion-MNIST's label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

const FILES: [(&str, &[u8]); 4] = [
    ("train-images-idx3-ubyte.gz", include_bytes!("../../data/fashion-mnist/train-images-idx3-ubyte.gz")),
    ("train-labels-idx1-ubyte.gz", include_bytes!("../../data/fashion-mnist/train-labels-idx1-ubyte.gz")),
    ("t10k-images-idx3-ubyte.gz", include_bytes!("../../data/fashion-mnist/t10k-images-idx3-ubyte.gz")),
    ("t10k-labels-idx1-ubyte.gz", include_bytes!("../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz")),
];

/// Both splits, decoded from the embedded files (about 30 ms).
pub(crate) fn load() -> Result<(Dataset, Dataset), DataError> {
    let classes: Vec<String> = FASHION_MNIST_CLASSES.map(String::from).to_vec();
    let split = |images: usize| -> Result<Dataset, DataError> {
        let ((image_name, image_gz), (label_name, label_gz)) = (FILES[images], FILES[images + 1]);
        let image_path = Path::new("embedded:fashion-mnist").join(image_name);
        let label_path = Path::new("embedded:fashion-mnist").join(label_name);
        let (pixels, shape) = parse_images(&image_path, &gunzip_if_needed(&image_path, image_gz.to_vec())?)?;
        let labels = parse_labels(&label_path, &gunzip_if_needed(&label_path, label_gz.to_vec())?)?;
        Ok(Dataset::new(pixels, labels, classes.clone(), shape))
    };
    Ok((split(0)?, split(2)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{encode_images, encode_labels, gzip, read_split};
    use crate::data::{select_per_class, Shape};

    /// Images per class kept from each split of the Debian package, and the selection seed.
    const TRAIN_PER_CLASS: usize = 400;
    const TEST_PER_CLASS: usize = 100;
    const SUBSET_SEED: u64 = 2026;

    #[test]
    fn embedded_subset_is_balanced_fashion_mnist() {
        let (train, test) = load().unwrap();
        assert_eq!((train.shape(), test.shape()), (Shape::new(1, 28, 28), Shape::new(1, 28, 28)));
        assert_eq!(train.class_counts(), vec![TRAIN_PER_CLASS; 10]);
        assert_eq!(test.class_counts(), vec![TEST_PER_CLASS; 10]);
        assert_eq!(train.classes()[9], "Ankle boot");
        let total: usize = FILES.iter().map(|(_, bytes)| bytes.len()).sum();
        assert!(total < 3_000_000, "embedded data grew to {total} bytes");
    }

    /// Rebuilds `evaluator/data/fashion-mnist/` from Debian's `dataset-fashion-mnist`:
    /// `FASHION_MNIST_DIR=<extracted>/usr/share/datasets/fashion-mnist \
    ///  cargo test -p evaluator regenerate_embedded_subset -- --ignored`
    /// The output is byte-identical on every run (fixed seed, gzip timestamp 0).
    #[test]
    #[ignore = "needs FASHION_MNIST_DIR; rewrites the embedded files"]
    fn regenerate_embedded_subset() {
        let src = std::path::PathBuf::from(std::env::var("FASHION_MNIST_DIR").expect("set FASHION_MNIST_DIR"));
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
        let splits = [("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)];
        for (prefix, per_class) in splits {
            let images = src.join(format!("{prefix}-images-idx3-ubyte.gz"));
            let labels = src.join(format!("{prefix}-labels-idx1-ubyte.gz"));
            let (pixels, labels, shape) = read_split(&images, &labels).unwrap();
            let keep = select_per_class(&labels, 10, per_class, SUBSET_SEED);
            let kept_pixels: Vec<u8> =
                keep.iter().flat_map(|&i| &pixels[i * shape.numel()..][..shape.numel()]).copied().collect();
            let kept_labels: Vec<u32> = keep.iter().map(|&i| labels[i]).collect();
            let write = |kind: &str, bytes: Vec<u8>| {
                let name = format!("{prefix}-{kind}-idx{}-ubyte.gz", if kind == "images" { 3 } else { 1 });
                std::fs::write(out.join(name), gzip(&bytes)).unwrap();
            };
            write("images", encode_images(&kept_pixels, shape));
            write("labels", encode_labels(&kept_labels));
        }
    }
}
