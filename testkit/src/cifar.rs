//! CIFAR-10 binary batches as the loaders read them: records of one label byte followed by the
//! image's red, green and blue 32x32 planes.

use std::path::Path;

use crate::bytes::noise;

/// Pixel bytes of one record's image (3 x 32 x 32).
pub const IMAGE: usize = 3 * 32 * 32;
/// Bytes of one record: the label, then the image.
pub const RECORD: usize = 1 + IMAGE;

/// Writes `path` as one batch: record `i` holds `labels[i]` and the `i`-th [`IMAGE`] bytes of
/// `pixels`.
pub fn write_batch(path: &Path, labels: &[u8], pixels: &[u8]) {
    assert_eq!(pixels.len(), labels.len() * IMAGE, "{} labels need {} pixel bytes", labels.len(), labels.len() * IMAGE);
    let mut bytes = Vec::with_capacity(labels.len() * RECORD);
    for (label, image) in labels.iter().zip(pixels.chunks_exact(IMAGE)) {
        bytes.push(*label);
        bytes.extend_from_slice(image);
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A CIFAR-10 folder `dir` (created if needed) with the usual six files, `data_batch_1..5.bin`
/// and `test_batch.bin`, of `records` records each: labels cycle through the ten classes,
/// pixels are [`noise`], the same on every run.
pub fn write_noise_batches(dir: &Path, records: usize) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let names = (1..=5).map(|i| format!("data_batch_{i}.bin")).chain(["test_batch.bin".to_string()]);
    for (file, name) in names.enumerate() {
        let labels: Vec<u8> = (0..records).map(|r| (r % 10) as u8).collect();
        let pixels: Vec<u8> = (0..records).flat_map(|r| noise(IMAGE, (file * 1000 + r) as u64)).collect();
        write_batch(&dir.join(name), &labels, &pixels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_batches_of_whole_records() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cifar");
        write_noise_batches(&dir, 3);
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names.len(), 6);
        assert_eq!(names[5], "test_batch.bin");
        let bytes = std::fs::read(dir.join("data_batch_2.bin")).unwrap();
        assert_eq!(bytes.len(), 3 * RECORD);
        assert_eq!((bytes[0], bytes[RECORD], bytes[2 * RECORD]), (0, 1, 2));
        assert_eq!(&bytes[1..RECORD], &noise(IMAGE, 1000)[..]);
    }
}
