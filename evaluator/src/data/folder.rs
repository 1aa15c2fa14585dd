//! Image folders: `train/<class>/*.jpg|jpeg|png` and `test/<class>/...`, classes being the
//! sorted folder names. Files are listed (sorted, so sample order is stable), the per-class
//! subset is chosen from the listing, and only the chosen files are decoded, in parallel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use image::DynamicImage;
use rayon::prelude::*;

use super::{resize_image, select_per_class, DataError, Dataset, Interp, LoadOptions, Resize, Shape};

pub(crate) fn is_folder(dir: &Path) -> bool {
    dir.join("train").is_dir() && dir.join("test").is_dir()
}

pub(crate) fn load(dir: &Path, opts: &LoadOptions) -> Result<(Dataset, Dataset), DataError> {
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let classes = class_folders(&train_dir)?;
    let test_classes = class_folders(&test_dir)?;
    if classes != test_classes {
        let (a, b): (BTreeSet<_>, BTreeSet<_>) = (classes.iter().collect(), test_classes.iter().collect());
        return Err(DataError::ClassMismatch {
            train: train_dir,
            test: test_dir,
            only_train: a.difference(&b).map(|s| s.to_string()).collect(),
            only_test: b.difference(&a).map(|s| s.to_string()).collect(),
        });
    }
    let train = load_split(&train_dir, &classes, opts.train_per_class, opts)?;
    let test = load_split(&test_dir, &classes, opts.test_per_class, opts)?;
    Ok((train, test))
}

/// Sorted names of the sub-directories (hidden ones skipped).
fn class_folders(split_dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(split_dir).map_err(|e| DataError::io(split_dir, e))? {
        let path = entry.map_err(|e| DataError::io(split_dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.is_dir() && !name.starts_with('.') {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(DataError::corrupt(split_dir, "no class folders"));
    }
    names.sort();
    Ok(names)
}

fn load_split(
    dir: &Path,
    classes: &[String],
    per_class: Option<usize>,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (label, class) in classes.iter().enumerate() {
        let found = image_files(&dir.join(class))?;
        labels.resize(labels.len() + found.len(), label as u32);
        files.extend(found);
    }
    if let Some(n) = per_class {
        let keep = select_per_class(&labels, classes.len(), n, opts.seed);
        files = keep.iter().map(|&i| files[i].clone()).collect();
        labels = keep.iter().map(|&i| labels[i]).collect();
    }
    let (pixels, shape) = decode_all(&files, opts.image_size)?;
    Ok(Dataset::new(pixels, labels, classes.to_vec(), shape))
}

/// Image files of one class folder, sorted by name; an empty folder is an error.
fn image_files(class_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(class_dir).map_err(|e| DataError::io(class_dir, e))? {
        let path = entry.map_err(|e| DataError::io(class_dir, e))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        if matches!(ext.as_str(), "jpg" | "jpeg" | "png") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(DataError::EmptyClass { path: class_dir.to_path_buf() });
    }
    files.sort();
    Ok(files)
}

/// Decodes every file to C×H×W. The first image fixes the channel count (1 if it is grey,
/// else 3) and, unless `size` is given, the size every other image must have.
fn decode_all(files: &[PathBuf], size: Option<(usize, usize)>) -> Result<(Vec<u8>, Shape), DataError> {
    let Some(first) = files.first() else {
        let (height, width) = size.unwrap_or((0, 0));
        return Ok((Vec::new(), Shape::new(3, height, width)));
    };
    let probe = open(first)?;
    let channels = if probe.color().has_color() { 3 } else { 1 };
    let (height, width) = size.unwrap_or((probe.height() as usize, probe.width() as usize));
    let shape = Shape::new(channels, height, width);
    let images: Vec<Vec<u8>> =
        files.par_iter().map(|path| to_chw(path, open(path)?, shape, size.is_some())).collect::<Result<_, _>>()?;
    Ok((images.concat(), shape))
}

fn open(path: &Path) -> Result<DynamicImage, DataError> {
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = reader.with_guessed_format().map_err(|e| DataError::io(path, e))?;
    reader.decode().map_err(|e| DataError::BadImage { path: path.to_path_buf(), reason: e.to_string() })
}

/// The image as `shape.channels` planes, resized to `shape` when `resize`, else required to match.
fn to_chw(path: &Path, img: DynamicImage, shape: Shape, resize: bool) -> Result<Vec<u8>, DataError> {
    let found = (img.height() as usize, img.width() as usize);
    let native = Shape::new(shape.channels, found.0, found.1);
    let interleaved = if shape.channels == 3 { img.into_rgb8().into_raw() } else { img.into_luma8().into_raw() };
    let planar = (0..shape.channels)
        .flat_map(|c| interleaved.iter().skip(c).step_by(shape.channels).copied())
        .collect::<Vec<u8>>();
    if found == (shape.height, shape.width) {
        return Ok(planar);
    }
    if !resize {
        let expected = (shape.height, shape.width);
        return Err(DataError::ImageSize { path: path.to_path_buf(), found, expected });
    }
    Ok(resize_image(&planar, native, Resize { height: shape.height, width: shape.width, interp: Interp::Bilinear }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::fixtures;

    #[test]
    fn loads_png_and_jpeg_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = fixtures::write_folder(dir.path());
        let (a, b) = load(dir.path(), &LoadOptions::default()).unwrap();
        // PNG is lossless, so decoded pixels match exactly; JPEG is checked for shape only.
        assert_eq!(a, train);
        assert_eq!((b.len(), b.shape(), b.labels()), (test.len(), test.shape(), test.labels()));
    }

    #[test]
    fn subset_at_load_equals_subset_after_load() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_folder(dir.path());
        let (full, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        let opts = LoadOptions { train_per_class: Some(2), seed: 4, ..Default::default() };
        let (sub, _) = load(dir.path(), &opts).unwrap();
        assert_eq!(sub, full.subset_per_class(2, 4));
        assert_eq!(sub.class_counts(), vec![2; sub.num_classes()]);
    }

    #[test]
    fn load_resolution_resizes() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_folder(dir.path());
        let opts = LoadOptions { image_size: Some((12, 10)), ..Default::default() };
        let (train, test) = load(dir.path(), &opts).unwrap();
        assert_eq!((train.shape(), test.shape()), (Shape::new(3, 12, 10), Shape::new(3, 12, 10)));
    }

    #[test]
    fn a_file_that_is_not_an_image_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_folder(dir.path());
        let bad = dir.path().join("test/cat/zz.jpg");
        std::fs::write(&bad, b"this is text, not a JPEG").unwrap();
        let err = load(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: not a readable image: ", bad.display())), "{err}");
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn differing_class_folders_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_folder(dir.path());
        std::fs::rename(dir.path().join("test/dog"), dir.path().join("test/wolf")).unwrap();
        let err = load(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.ends_with("class folders differ (only in train: [dog]; only in test: [wolf])"), "{err}");
    }

    #[test]
    fn empty_class_and_odd_sizes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_folder(dir.path());
        let odd = dir.path().join("train/cat/odd.png");
        image::RgbImage::new(5, 5).save(&odd).unwrap();
        let err = load(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: image is 5x5 but the data set is 8x6", odd.display())), "{err}");
        std::fs::remove_file(&odd).unwrap();
        let empty = dir.path().join("test/dog");
        std::fs::remove_dir_all(&empty).unwrap();
        std::fs::create_dir(&empty).unwrap();
        let err = load(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert_eq!(err, format!("{}: empty class: no .jpg/.jpeg/.png images", empty.display()));
    }
}
