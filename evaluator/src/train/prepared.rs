//! The data of a training run, prepared once: how to cut it ([`DataSpec`]), the loaded splits
//! with their normalisation and augmentation ([`PreparedData`]), and the record of both that a
//! checkpoint keeps ([`DataRecord`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::{load, DataSource, Dataset, Interp, LoadOptions, Loader, LoaderConfig, Normalize, Resize};

/// Train / validation / test splits with their normalisation and augmentation, loaded once
/// and shared by every trial of a search.
#[derive(Clone)]
pub struct PreparedData {
    pub train: Arc<Dataset>,
    pub val: Arc<Dataset>,
    pub test: Arc<Dataset>,
    pub norm: Normalize,
    pub augment: crate::data::Augment,
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
        };
        Ok(Self { train: Arc::new(train), val: Arc::new(val), test: Arc::new(splits.test), norm, augment, record })
    }

    /// Training batches, resized to `resolution` x `resolution` when given.
    pub fn train_loader(&self, batch: usize, seed: u64, resolution: Option<usize>) -> Loader {
        let resize = square(resolution);
        let cfg = LoaderConfig { batch_size: batch, seed, augment: self.augment, resize, ..Default::default() };
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
