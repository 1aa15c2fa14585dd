//! The data of a training run, prepared once: how to cut it ([`DataSpec`]), the loaded splits
//! with their normalisation and augmentation ([`PreparedData`]), and the record of both that a
//! checkpoint keeps ([`DataRecord`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::{load, DataSource, Dataset, Format, Interp, LoadOptions, Loader, LoaderConfig, Normalize, Resize};

/// Train / validation / test splits with their normalisation and augmentation, loaded once
/// and shared by every trial of a search.
#[derive(Clone)]
pub struct PreparedData {
    pub train: Arc<Dataset>,
    pub val: Arc<Dataset>,
    pub test: Arc<Dataset>,
    pub norm: Normalize,
    /// Whose augmentation rule applies, sized by each loader's batch resolution.
    pub format: Format,
    pub record: DataRecord,
}

/// How to cut the data: a class-balanced training subset and a validation hold-out from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub source: String,
    /// Training images per class (before the validation hold-out); `None` = all.
    pub train_per_class: Option<usize>,
    /// Validation images per class, held out of the training split; `None` = 10% of the
    /// smallest class.
    pub val_per_class: Option<usize>,
    /// Augmentation on/off; `None` = the format's default.
    pub augment: Option<bool>,
    pub seed: u64,
}

/// What the data of a run was, enough to rebuild the same loaders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    /// How the data was cut, as asked.
    pub spec: DataSpec,
    pub fingerprint: String,
    /// Validation images per class, as resolved.
    pub val_per_class: usize,
    pub augment: bool,
    pub class_names: Vec<String>,
    /// Per-channel normalisation used for every split.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Height and width of the stored images (before any `--resolution`), which `nas infer`
    /// resizes an image to as loading did; absent in checkpoints of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<[usize; 2]>,
}

impl PreparedData {
    pub fn load(spec: &DataSpec) -> std::result::Result<Self, crate::data::DataError> {
        let source: DataSource = spec.source.parse().expect("infallible");
        let opts = LoadOptions { train_per_class: spec.train_per_class, seed: spec.seed, ..Default::default() };
        let splits = load(&source, &opts)?;
        let smallest = splits.train.class_counts().into_iter().min().unwrap_or(0);
        let val_per_class = spec.val_per_class.unwrap_or((smallest / 10).max(1));
        let (train, val) = splits.train.split_validation(val_per_class, spec.seed)?;
        let norm = Normalize::from_dataset(&train);
        let augment = splits.format.augment(train.shape(), spec.augment);
        let record = DataRecord {
            spec: spec.clone(),
            fingerprint: splits.fingerprint(),
            val_per_class,
            augment: !augment.is_none(),
            class_names: train.classes().to_vec(),
            mean: norm.mean.clone(),
            std: norm.std.clone(),
            image_size: Some([train.shape().height, train.shape().width]),
        };
        let (train, val, test) = (Arc::new(train), Arc::new(val), Arc::new(splits.test));
        Ok(Self { train, val, test, norm, format: splits.format, record })
    }

    /// Training batches, resized to `resolution` x `resolution` when given. The random crop's
    /// padding follows the batch size, not the stored one: a shift of 4 px is an eighth of a
    /// 32 px image but a quarter of a 16 px one.
    pub fn train_loader(&self, batch: usize, seed: u64, resolution: Option<usize>) -> Loader {
        let resize = square(resolution);
        let stored = self.train.shape();
        let shape = resize.map_or(stored, |r| r.output(stored));
        let augment = self.format.augment(shape, Some(self.record.augment));
        let cfg = LoaderConfig { batch_size: batch, seed, augment, resize, ..Default::default() };
        Loader::new(self.train.clone(), self.norm.clone(), cfg)
    }

    /// Evaluation batches of `data` (never augmented), resized as [`PreparedData::train_loader`].
    pub fn eval_loader(&self, data: &Arc<Dataset>, batch: usize, resolution: Option<usize>) -> Loader {
        let cfg = LoaderConfig { batch_size: batch, resize: square(resolution), ..Default::default() };
        Loader::new(data.clone(), self.norm.clone(), cfg)
    }
}

/// A bilinear resize to `side` x `side`.
fn square(side: Option<usize>) -> Option<Resize> {
    side.map(|side| Resize { height: side, width: side, interp: Interp::Bilinear })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest shift the training crops of `data` show at `resolution`: the number of
    /// all-padding rows or columns in any image (every stored pixel is white, padding black).
    fn largest_shift(data: &PreparedData, resolution: Option<usize>) -> usize {
        let mut largest = 0;
        for (x, _) in data.train_loader(10, 1, resolution).epoch(0) {
            let (_, _, h, w) = x.dims4().unwrap();
            for image in x.flatten_all().unwrap().to_vec1::<f32>().unwrap().chunks_exact(3 * h * w) {
                let padded = |i: usize| image[i] < -1.0; // white is 0 after normalisation, black -255
                let rows = (0..h).filter(|&y| (0..w).all(|x| padded(y * w + x))).count();
                let cols = (0..w).filter(|&x| (0..h).all(|y| padded(y * w + x))).count();
                largest = largest.max(rows).max(cols);
            }
        }
        largest
    }

    #[test]
    fn the_crop_padding_follows_the_batch_resolution() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cifar");
        std::fs::create_dir(&dir).unwrap();
        let labels: Vec<u8> = (0..20).map(|i| i % 10).collect();
        for name in (1..=5).map(|i| format!("data_batch_{i}.bin")).chain(["test_batch.bin".into()]) {
            testkit::cifar::write_batch(&dir.join(name), &labels, &[255; 20 * testkit::cifar::IMAGE]);
        }
        let spec = DataSpec {
            source: dir.display().to_string(),
            train_per_class: None,
            val_per_class: Some(1),
            augment: None,
            seed: 0,
        };
        let data = PreparedData::load(&spec).unwrap();
        // An eighth of the side, as the stored 32 px CIFAR images get 4.
        for (resolution, pad) in [(None, 4), (Some(16), 2), (Some(64), 8)] {
            assert_eq!(largest_shift(&data, resolution), pad, "at {resolution:?}");
        }
    }
}
