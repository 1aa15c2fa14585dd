//! IDX files, the MNIST family's format: a big-endian magic (`0x0000_08dd`: u8 data, `dd`
//! dimensions), the dimension sizes as u32, then the raw bytes. Files may be gzip-compressed;
//! compression is recognised by content, not by name.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{DataError, Dataset, Shape};

pub(crate) const IMAGES_MAGIC: u32 = 0x0000_0803;
pub(crate) const LABELS_MAGIC: u32 = 0x0000_0801;

/// File stems of the two splits, as MNIST names them.
const TRAIN: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
const TEST: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

/// `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")].into_iter().map(|name| dir.join(name)).find(|p| p.is_file())
}

pub(crate) fn is_idx(dir: &Path) -> bool {
    find(dir, TRAIN.0).is_some()
}

/// Loads both splits; classes are named by their label, "0" to the largest label seen.
pub(crate) fn load(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let file = |stem: &str| {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "IDX file not found (nor with .gz)");
        find(dir, stem).ok_or_else(|| DataError::io(&dir.join(stem), missing()))
    };
    let train = read_split(&file(TRAIN.0)?, &file(TRAIN.1)?)?;
    let test = read_split(&file(TEST.0)?, &file(TEST.1)?)?;
    let max_label = train.1.iter().chain(&test.1).copied().max().unwrap_or(0);
    let classes: Vec<String> = (0..=max_label).map(|l| l.to_string()).collect();
    Ok((Dataset::new(train.0, train.1, classes.clone(), train.2), Dataset::new(test.0, test.1, classes, test.2)))
}

/// Pixels, labels and shape of one split from its two files.
pub(crate) fn read_split(images: &Path, labels: &Path) -> Result<(Vec<u8>, Vec<u32>, Shape), DataError> {
    let (pixels, shape) = parse_images(images, &read_maybe_gz(images)?)?;
    let label_values = parse_labels(labels, &read_maybe_gz(labels)?)?;
    let n_images = pixels.len() / shape.numel().max(1);
    if n_images != label_values.len() {
        let (images, labels) = (images.to_path_buf(), labels.to_path_buf());
        return Err(DataError::CountMismatch { images, labels, n_images, n_labels: label_values.len() });
    }
    Ok((pixels, label_values, shape))
}

pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    gunzip_if_needed(path, raw)
}

pub(crate) fn gunzip_if_needed(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| DataError::corrupt(path, format!("bad gzip: {e}")))?;
    Ok(out)
}

/// `(pixels, shape)` of an idx3 image file; the shape has one channel.
pub(crate) fn parse_images(path: &Path, bytes: &[u8]) -> Result<(Vec<u8>, Shape), DataError> {
    let (dims, body) = header(path, bytes, IMAGES_MAGIC)?;
    let shape = Shape::new(1, dims[1], dims[2]);
    expect_len(path, body, dims[0] * shape.numel())?;
    Ok((body.to_vec(), shape))
}

pub(crate) fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u32>, DataError> {
    let (dims, body) = header(path, bytes, LABELS_MAGIC)?;
    expect_len(path, body, dims[0])?;
    Ok(body.iter().map(|&l| l as u32).collect())
}

/// The dimension sizes and the payload after them.
fn header<'a>(path: &Path, bytes: &'a [u8], magic: u32) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let word = |i: usize| bytes.get(4 * i..4 * i + 4).map(|b| u32::from_be_bytes(b.try_into().unwrap()));
    let found = word(0).ok_or_else(|| DataError::corrupt(path, "file too short for an IDX header"))?;
    if found != magic {
        return Err(DataError::BadMagic { path: path.to_path_buf(), found, expected: magic });
    }
    let rank = (magic & 0xff) as usize;
    let dims: Option<Vec<usize>> = (1..=rank).map(|i| word(i).map(|d| d as usize)).collect();
    let dims = dims.ok_or_else(|| DataError::corrupt(path, "file too short for an IDX header"))?;
    Ok((dims, &bytes[4 * (rank + 1)..]))
}

fn expect_len(path: &Path, body: &[u8], want: usize) -> Result<(), DataError> {
    if body.len() != want {
        return Err(DataError::corrupt(path, format!("IDX payload is {} bytes, header says {want}", body.len())));
    }
    Ok(())
}

#[cfg(test)]
/// IDX image bytes for `n` single-channel images (the reverse of `parse_images`).
pub(crate) fn encode_images(pixels: &[u8], shape: Shape) -> Vec<u8> {
    let n = pixels.len() / shape.numel();
    let mut out = Vec::with_capacity(16 + pixels.len());
    for word in [IMAGES_MAGIC, n as u32, shape.height as u32, shape.width as u32] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

#[cfg(test)]
pub(crate) fn encode_labels(labels: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend(labels.iter().map(|&l| l as u8));
    out
}

#[cfg(test)]
/// Gzip at the best level with a zero timestamp, so the same bytes always compress the same.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to memory cannot fail");
    enc.finish().expect("writing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::fixtures;

    #[test]
    fn loads_plain_and_gzipped_files() {
        for gz in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (train, test) = fixtures::write_idx(dir.path(), gz);
            let (a, b) = load(dir.path()).unwrap();
            assert_eq!((a, b), (train, test));
        }
    }

    #[test]
    fn bad_magic_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_idx(dir.path(), false);
        let labels = dir.path().join(TRAIN.1);
        std::fs::write(&labels, encode_images(&[0; 4], Shape::new(1, 2, 2))).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert_eq!(err, format!("{}: bad IDX magic 0x00000803, expected 0x00000801", labels.display()));
    }

    #[test]
    fn short_payload_and_count_mismatch_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_idx(dir.path(), false);
        let labels = dir.path().join(TEST.1);
        std::fs::write(&labels, encode_labels(&[1])).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with(&format!("but {} has 1 labels", labels.display())), "{err}");
        let mut bytes = encode_labels(&[1, 2]);
        bytes.pop();
        std::fs::write(&labels, bytes).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert_eq!(err, format!("{}: IDX payload is 1 bytes, header says 2", labels.display()));
    }
}
