//! Real data for proxy and full training: loading, class-balanced splits, augmentation and
//! batching into candle tensors.
//!
//! [`load`] reads a [`DataSource`] (`--data PATH`, or `default`) into [`DataSplits`]: a train and
//! a test [`Dataset`], each held as u8 pixels N×C×H×W with labels and class names. The layout is
//! detected from the directory ([`Format`]): CIFAR-10 binary batches, image folders
//! (`train/<class>/`, `test/<class>/`), IDX files (MNIST family, plain or gzip), or the embedded
//! Fashion-MNIST subset. Every failure is a [`DataError`] that prints as one line naming the file.
//!
//! The usual path from data to batches:
//!
//! ```no_run
//! use evaluator::data::{load, DataSource, Loader, LoaderConfig, LoadOptions, Normalize};
//! # fn main() -> Result<(), evaluator::data::DataError> {
//! let data = load(&"default".parse().unwrap(), &LoadOptions::default())?;
//! // Search scores on a hold-out of the training data; the test split is for the final model.
//! let (train, val) = data.train.split_validation(50, 0)?;
//! let norm = Normalize::from_dataset(&train);
//! let augment = data.format.augment(train.shape(), None);
//! let train = Loader::new(train, norm.clone(), LoaderConfig { augment, ..Default::default() });
//! let val = Loader::new(val, norm, LoaderConfig::default());
//! for epoch in 0..3 {
//!     for (x, y) in train.epoch(epoch) { /* x: f32 [B,C,H,W], y: u32 [B] */ }
//! }
//! for (x, y) in val.eval() { /* score */ }
//! # Ok(()) }
//! ```
//!
//! Everything random (subsets, the validation hold-out, epoch order, crops, flips) is drawn
//! from the module's own seeded generator, so one seed reproduces a run's data exactly, even
//! with batches built on a background thread.

mod cifar;
mod dataset;
mod embedded;
mod error;
#[cfg(test)]
mod fixtures;
mod folder;
mod idx;
mod loader;
mod rng;
mod split;
mod transform;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use cifar::CIFAR10_CLASSES;
pub use dataset::{Dataset, Shape};
pub use embedded::FASHION_MNIST_CLASSES;
pub use error::{DataError, ACCEPTED_LAYOUTS};
pub use loader::{Batches, Loader, LoaderConfig};
pub use split::select_per_class;
pub use transform::{resize_image, Augment, Interp, Normalize, Resize};

/// Where data comes from: the embedded default or a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The embedded Fashion-MNIST subset (4,000 train / 1,000 test, 28x28 grey).
    Default,
    Path(PathBuf),
}

impl FromStr for DataSource {
    type Err = std::convert::Infallible;

    /// `default` names the embedded set; anything else is a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "default" { DataSource::Default } else { DataSource::Path(s.into()) })
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Default => f.write_str("default"),
            DataSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The on-disk layouts [`load`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Cifar10Binary,
    ImageFolder,
    Idx,
    Embedded,
}

impl Format {
    /// The training augmentation for images of `shape` (the size batches will have).
    /// `enabled: None` takes the format's default: on for natural images (CIFAR, folders),
    /// off for the MNIST family, whose centred digits and garments gain little from it.
    /// Natural images get a pad of 1/8 of the side (4 px at 32) and flips; the MNIST family,
    /// when enabled, a pad of 1/14 (2 px at 28) and no flip, since a mirrored digit is
    /// another glyph.
    pub fn augment(self, shape: Shape, enabled: Option<bool>) -> Augment {
        let natural = matches!(self, Format::Cifar10Binary | Format::ImageFolder);
        if !enabled.unwrap_or(natural) {
            return Augment::NONE;
        }
        let side = shape.height.min(shape.width);
        if natural {
            Augment { crop_pad: side / 8, hflip: true }
        } else {
            Augment { crop_pad: side / 14, hflip: false }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Cifar10Binary => "cifar10-binary",
            Format::ImageFolder => "image-folder",
            Format::Idx => "idx",
            Format::Embedded => "embedded-fashion-mnist",
        })
    }
}

/// How much of a data set to load, and at what size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Keep up to this many training images per class ([`Dataset::subset_per_class`] rule).
    /// Image folders then decode only the chosen files.
    pub train_per_class: Option<usize>,
    /// The same for the test split.
    pub test_per_class: Option<usize>,
    /// Seeds the per-class subsets.
    pub seed: u64,
    /// Resize every image to (height, width) while loading (bilinear). Image folders whose
    /// images differ in size need it; to train at a larger size than stored, prefer
    /// [`LoaderConfig::resize`], which keeps memory at the native size.
    pub image_size: Option<(usize, usize)>,
}

/// The two splits of a loaded data set.
#[derive(Clone, Debug)]
pub struct DataSplits {
    pub train: Dataset,
    /// Only for final evaluation; search scores on [`Dataset::split_validation`] of `train`.
    pub test: Dataset,
    pub format: Format,
    pub source: DataSource,
}

impl DataSplits {
    /// Fingerprint of both splits (see [`Dataset::fingerprint`]), for run configs.
    pub fn fingerprint(&self) -> String {
        let mut h = dataset::Fnv::default();
        h.write(&self.train.fingerprint_u64().to_le_bytes());
        h.write(&self.test.fingerprint_u64().to_le_bytes());
        format!("{:016x}", h.0)
    }
}

/// Which layout `dir` holds, or why none.
pub fn detect(dir: &Path) -> Result<Format, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir { path: dir.to_path_buf() });
    }
    if cifar::is_cifar(dir) {
        Ok(Format::Cifar10Binary)
    } else if idx::is_idx(dir) {
        Ok(Format::Idx)
    } else if folder::is_folder(dir) {
        Ok(Format::ImageFolder)
    } else {
        Err(DataError::UnknownLayout { path: dir.to_path_buf() })
    }
}

/// Loads both splits of `source`, detecting its layout.
pub fn load(source: &DataSource, opts: &LoadOptions) -> Result<DataSplits, DataError> {
    let (format, (train, test)) = match source {
        DataSource::Default => (Format::Embedded, embedded::load()?),
        DataSource::Path(dir) => {
            let format = detect(dir)?;
            let splits = match format {
                Format::Cifar10Binary => cifar::load(dir)?,
                Format::Idx => idx::load(dir)?,
                Format::ImageFolder => folder::load(dir, opts)?,
                Format::Embedded => unreachable!("detect never returns Embedded"),
            };
            (format, splits)
        }
    };
    // Folders applied subset and size while decoding; the rest apply them here, by the same rule.
    let (train, test) = if format == Format::ImageFolder { (train, test) } else { finish(train, test, opts) };
    Ok(DataSplits { train, test, format, source: source.clone() })
}

fn finish(train: Dataset, test: Dataset, opts: &LoadOptions) -> (Dataset, Dataset) {
    let subset = |d: Dataset, n: Option<usize>| match n {
        Some(n) => d.subset_per_class(n, opts.seed),
        None => d,
    };
    let resize = |d: Dataset| match opts.image_size {
        Some((height, width)) => d.resized(Resize { height, width, interp: Interp::Bilinear }),
        None => d,
    };
    (resize(subset(train, opts.train_per_class)), resize(subset(test, opts.test_per_class)))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn load_dir(dir: &Path) -> Result<DataSplits, DataError> {
        load(&DataSource::Path(dir.to_path_buf()), &LoadOptions::default())
    }

    #[test]
    fn each_layout_is_detected_and_loaded() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        fixtures::write_cifar(dirs[0].path());
        fixtures::write_idx(dirs[1].path(), true);
        fixtures::write_folder(dirs[2].path());
        let formats = [Format::Cifar10Binary, Format::Idx, Format::ImageFolder];
        for (dir, format) in dirs.iter().zip(formats) {
            let data = load_dir(dir.path()).unwrap();
            assert_eq!(data.format, format);
            assert!(!data.train.is_empty() && !data.test.is_empty());
            assert_eq!(data.train.classes(), data.test.classes());
        }
    }

    #[test]
    fn default_is_the_embedded_set() {
        let data = load(&"default".parse().unwrap(), &LoadOptions::default()).unwrap();
        assert_eq!((data.format, data.train.num_classes()), (Format::Embedded, 10));
        assert_eq!(data.train.class_counts(), vec![400; 10]);
        assert_eq!(data.format.augment(data.train.shape(), None), Augment::NONE);
        assert_eq!(data.format.augment(data.train.shape(), Some(true)), Augment { crop_pad: 2, hflip: false });
        assert_eq!(data.fingerprint(), load(&DataSource::Default, &LoadOptions::default()).unwrap().fingerprint());
    }

    #[test]
    fn options_subset_and_resize_every_format() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_cifar(dir.path());
        let opts =
            LoadOptions { train_per_class: Some(2), test_per_class: Some(1), seed: 3, image_size: Some((16, 16)) };
        let data = load(&DataSource::Path(dir.path().into()), &opts).unwrap();
        assert_eq!(data.train.class_counts(), vec![2; 10]);
        assert_eq!(data.test.class_counts(), vec![1; 10]);
        assert_eq!(data.train.shape(), Shape::new(3, 16, 16));
        assert_eq!(Format::Cifar10Binary.augment(Shape::new(3, 32, 32), None), Augment { crop_pad: 4, hflip: true });
    }

    #[test]
    fn missing_and_unknown_directories_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(
            load_dir(&missing).unwrap_err().to_string(),
            format!("{}: data directory not found", missing.display())
        );
        std::fs::write(dir.path().join("readme.txt"), "hi").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert_eq!(err, format!("{}: unknown data layout; accepted: {ACCEPTED_LAYOUTS}", dir.path().display()));
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn data_source_round_trips() {
        assert_eq!("default".parse::<DataSource>().unwrap(), DataSource::Default);
        assert_eq!("/x/y".parse::<DataSource>().unwrap().to_string(), "/x/y");
    }

    #[test]
    fn real_cifar10_jpg_loads_a_balanced_subset() {
        let Some(dir) = testkit::shared::cifar10_jpg() else { return };
        let opts = LoadOptions { train_per_class: Some(100), test_per_class: Some(100), seed: 0, image_size: None };
        let start = Instant::now();
        let data = load(&DataSource::Path(dir), &opts).unwrap();
        eprintln!("cifar10-jpg: 1,000 train + 1,000 test JPEGs decoded in {:?}", start.elapsed());
        assert_eq!(data.format, Format::ImageFolder);
        assert_eq!(data.train.classes(), CIFAR10_CLASSES);
        assert_eq!(data.train.class_counts(), vec![100; 10]);
        assert_eq!(data.test.class_counts(), vec![100; 10]);
        assert_eq!(data.train.shape(), Shape::new(3, 32, 32));
        let norm = Normalize::from_dataset(&data.train);
        // CIFAR-10's red channel mean is about 0.49 (125/255); a 1,000-image subset lands near it.
        assert!((norm.mean[0] - 0.49).abs() < 0.03, "red mean {}", norm.mean[0]);
    }

    /// Load times of larger CIFAR-10 JPEG subsets (release-like test profile):
    /// `cargo test -p evaluator time_cifar10_jpg -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing only; takes seconds"]
    fn time_cifar10_jpg_loads() {
        let Some(dir) = testkit::shared::cifar10_jpg() else { return };
        for per_class in [Some(1000), None] {
            let opts = LoadOptions { train_per_class: per_class, test_per_class: Some(0), ..Default::default() };
            let start = Instant::now();
            let data = load(&DataSource::Path(dir.clone()), &opts).unwrap();
            let threads = rayon::current_num_threads();
            eprintln!("cifar10-jpg: {} train JPEGs in {:?} ({threads} threads)", data.train.len(), start.elapsed());
        }
    }
}
