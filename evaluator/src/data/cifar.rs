//! CIFAR-10 in its official binary form: `data_batch_1.bin` .. `data_batch_5.bin` and
//! `test_batch.bin`, each a run of 3073-byte records (one label byte, then 1024 red, 1024 green
//! and 1024 blue bytes of a 32x32 image, which is already C×H×W).

use std::path::{Path, PathBuf};

use super::{DataError, Dataset, Shape};

pub(crate) const RECORD: usize = 1 + 3 * 32 * 32;

/// The official class order, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

pub(crate) fn is_cifar(dir: &Path) -> bool {
    dir.join("data_batch_1.bin").is_file()
}

pub(crate) fn load(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let classes = class_names(dir)?;
    let train = read_batches(&train_files(dir)?, &classes)?;
    let test = read_batches(&[dir.join("test_batch.bin")], &classes)?;
    Ok((train, test))
}

/// `data_batch_<n>.bin` files ordered by `n`.
fn train_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut numbered = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let number = name.strip_prefix("data_batch_").and_then(|n| n.strip_suffix(".bin"));
        if let Some(n) = number.and_then(|n| n.parse::<u32>().ok()) {
            numbered.push((n, path));
        }
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

/// Names from `batches.meta.txt` (one per line) when present, else the official ten.
fn class_names(dir: &Path) -> Result<Vec<String>, DataError> {
    let meta = dir.join("batches.meta.txt");
    if !meta.is_file() {
        return Ok(CIFAR10_CLASSES.map(String::from).to_vec());
    }
    let text = std::fs::read_to_string(&meta).map_err(|e| DataError::io(&meta, e))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.is_empty() {
        return Err(DataError::corrupt(&meta, "no class names"));
    }
    Ok(names)
}

fn read_batches(files: &[PathBuf], classes: &[String]) -> Result<Dataset, DataError> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        if bytes.len() % RECORD != 0 {
            return Err(DataError::TruncatedCifar { path: path.clone(), size: bytes.len() as u64 });
        }
        for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
            if record[0] as usize >= classes.len() {
                let what = format!("record {i} has label {} but there are {} classes", record[0], classes.len());
                return Err(DataError::corrupt(path, what));
            }
            labels.push(record[0] as u32);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    Ok(Dataset::new(pixels, labels, classes.to_vec(), Shape::new(3, 32, 32)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::fixtures;

    #[test]
    fn loads_batches_in_numeric_order() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = fixtures::write_cifar(dir.path());
        let (a, b) = load(dir.path()).unwrap();
        assert_eq!((a.len(), b.len()), (train.len(), test.len()));
        assert_eq!((a, b), (train, test));
    }

    #[test]
    fn truncated_batch_names_the_file_and_size() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_cifar(dir.path());
        let path = dir.path().join("test_batch.bin");
        std::fs::write(&path, vec![0u8; RECORD + 5]).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        let want = "3078 bytes is not a multiple of the 3073-byte record";
        assert_eq!(err, format!("{}: truncated CIFAR-10 batch: {want}", path.display()));
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_cifar(dir.path());
        let path = dir.path().join("test_batch.bin");
        let mut record = vec![0u8; RECORD];
        record[0] = 12;
        std::fs::write(&path, record).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert_eq!(err, format!("{}: record 0 has label 12 but there are 10 classes", path.display()));
    }
}
