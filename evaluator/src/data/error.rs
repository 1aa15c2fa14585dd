//! `DataError`: every way loading a data set can fail, each shown as one line that names the
//! file and what is wrong with it, so a CLI can print it as is.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The layouts `--data` accepts, quoted by [`DataError::UnknownLayout`].
pub const ACCEPTED_LAYOUTS: &str = "CIFAR-10 binary (data_batch_*.bin + test_batch.bin), \
     image folders (train/<class>/*.jpg|png + test/<class>/...), \
     IDX (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*, optionally .gz), \
     or `default` for the embedded Fashion-MNIST subset";

#[derive(Debug)]
pub enum DataError {
    /// `--data` names nothing, or a file where a directory was expected.
    MissingDir { path: PathBuf },
    /// The directory holds none of the accepted layouts.
    UnknownLayout { path: PathBuf },
    /// Reading or listing a file failed.
    Io { path: PathBuf, source: io::Error },
    /// A CIFAR-10 batch whose size is not a whole number of 3073-byte records.
    TruncatedCifar { path: PathBuf, size: u64 },
    /// A file that should hold a sample is damaged: bad label byte, short IDX payload, ...
    Corrupt { path: PathBuf, what: String },
    /// A file in an image folder that does not decode as an image.
    BadImage { path: PathBuf, reason: String },
    /// An image whose size differs from the rest of the data set.
    ImageSize { path: PathBuf, found: (usize, usize), expected: (usize, usize) },
    /// Train and test folders list different classes.
    ClassMismatch { train: PathBuf, test: PathBuf, only_train: Vec<String>, only_test: Vec<String> },
    /// A class folder with no images in it.
    EmptyClass { path: PathBuf },
    /// An IDX file whose first four bytes are not the magic number its role needs.
    BadMagic { path: PathBuf, found: u32, expected: u32 },
    /// Image and label files of one split disagree on the number of samples.
    CountMismatch { images: PathBuf, labels: PathBuf, n_images: usize, n_labels: usize },
    /// A split asked for more samples of a class than it has (e.g. a validation hold-out).
    TooFew { class: String, have: usize, want: usize, purpose: &'static str },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn corrupt(path: &Path, what: impl Into<String>) -> Self {
        DataError::Corrupt { path: path.to_path_buf(), what: what.into() }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DataError::*;
        match self {
            MissingDir { path } => write!(f, "{}: data directory not found", path.display()),
            UnknownLayout { path } => {
                write!(f, "{}: unknown data layout; accepted: {ACCEPTED_LAYOUTS}", path.display())
            }
            Io { path, source } => write!(f, "{}: {source}", path.display()),
            TruncatedCifar { path, size } => write!(
                f,
                "{}: truncated CIFAR-10 batch: {size} bytes is not a multiple of the 3073-byte record",
                path.display()
            ),
            Corrupt { path, what } => write!(f, "{}: {what}", path.display()),
            BadImage { path, reason } => write!(f, "{}: not a readable image: {reason}", path.display()),
            ImageSize { path, found, expected } => write!(
                f,
                "{}: image is {}x{} but the data set is {}x{} (set a load resolution to resize)",
                path.display(),
                found.0,
                found.1,
                expected.0,
                expected.1
            ),
            ClassMismatch { train, test, only_train, only_test } => write!(
                f,
                "{} and {}: class folders differ (only in train: [{}]; only in test: [{}])",
                train.display(),
                test.display(),
                only_train.join(", "),
                only_test.join(", ")
            ),
            EmptyClass { path } => write!(f, "{}: empty class: no .jpg/.jpeg/.png images", path.display()),
            BadMagic { path, found, expected } => {
                write!(f, "{}: bad IDX magic 0x{found:08x}, expected 0x{expected:08x}", path.display())
            }
            CountMismatch { images, labels, n_images, n_labels } => {
                write!(f, "{}: {n_images} images but {} has {n_labels} labels", images.display(), labels.display())
            }
            TooFew { class, have, want, purpose } => {
                write!(f, "class `{class}` has {have} samples, too few to take {want} for {purpose}")
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
