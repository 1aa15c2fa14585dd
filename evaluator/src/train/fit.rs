//! From a data source to a trained model: preparing the splits once ([`PreparedData`]), full
//! training into a run directory with per-epoch checkpoints and resume ([`train_to_dir`]), and
//! the short proxy training that scores a search candidate ([`proxy_evaluate`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};
use space::Arch;

use super::run::{read_metrics, save_trainer, write_metrics, Checkpoint, DataRecord, Metrics};
use super::trainer::{accuracy, progress_bar, TrainConfig, Trainer};
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

/// Trains `arch` into `dir`, checkpointing after every epoch; with `resume`, continues from the
/// checkpoint there (same config required) and reaches the same result as an unbroken run.
pub fn train_to_dir(
    arch: &Arch,
    data: &PreparedData,
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    quiet: bool,
) -> Result<Metrics> {
    let val = data.eval_loader(&data.val, 256, cfg.resolution);
    let train = data.train_loader(cfg.batch, cfg.seed, cfg.resolution);
    // A resumed run takes its weights from the checkpoint: the --init source may be gone by now.
    let fresh = if resume { TrainConfig { init: None, ..cfg.clone() } } else { cfg.clone() };
    let mut trainer = Trainer::new(arch, fresh, train, Some(val))?;
    trainer.config = cfg.clone();
    let mut metrics = Metrics::default();
    if resume {
        let ckpt = Checkpoint::read(dir)?;
        ckpt.restore(dir, &mut trainer)?;
        if ckpt.record.train.as_ref() != Some(cfg) {
            return Err(Error::msg(format!(
                "{}: the checkpoint was trained with another configuration",
                dir.display()
            )));
        }
        if ckpt.record.data.as_ref().map(|d| &d.fingerprint) != Some(&data.record.fingerprint) {
            return Err(Error::msg(format!("{}: the checkpoint was trained on other data", dir.display())));
        }
        metrics = read_metrics(dir)?;
        metrics.epochs.truncate(trainer.epoch);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    let bar = progress_bar(quiet);
    while trainer.epoch < cfg.epochs {
        match trainer.run_epoch(&bar)? {
            Ok(m) => metrics.epochs.push(m),
            Err(d) => {
                bar.abandon();
                return Err(Error::msg(format!(
                    "the loss became NaN or infinite at epoch {} step {}; stopped. The last good checkpoint (epoch {}) stays in {}",
                    d.epoch + 1,
                    d.step,
                    trainer.epoch,
                    dir.display()
                )));
            }
        }
        // Metrics first: a kill between the two writes leaves an extra epoch in metrics.json,
        // which a resume trims, never a checkpoint ahead of its metrics.
        write_metrics(dir, &metrics)?;
        save_trainer(dir, &trainer, &data.record)?;
    }
    bar.finish_and_clear();
    let test = data.eval_loader(&data.test, 256, cfg.resolution);
    metrics.test_accuracy = Some(trainer.accuracy(&test)?);
    metrics.wall_seconds = Some(metrics.epochs.iter().map(|e| e.seconds).sum());
    write_metrics(dir, &metrics)?;
    Ok(metrics)
}

/// The proxy task of a search: a short training run scored on the validation hold-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub epochs: usize,
    pub batch: usize,
    pub max_lr: f64,
    /// Train and score at this square size (bilinear resize per batch); `None`: as stored.
    /// Halving the side makes a step about four times cheaper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<usize>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self { epochs: 2, batch: 64, max_lr: 0.1, resolution: None }
    }
}

/// What a proxy training gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyResult {
    pub val_accuracy: f64,
    pub train_loss: f64,
    pub train_seconds: f64,
    pub images_per_s: f64,
}

/// Trains `arch` briefly (one-cycle SGD-Nesterov) and scores it on the validation split.
/// Deterministic for a seed. A diverged run is an error, which the search records as failed.
pub fn proxy_evaluate(arch: &Arch, cfg: &ProxyConfig, data: &PreparedData, seed: u64) -> Result<ProxyResult> {
    let tc = TrainConfig::one_cycle(cfg.epochs, cfg.batch, cfg.max_lr, seed);
    let resize = square(cfg.resolution);
    let train = LoaderConfig { batch_size: cfg.batch, seed, augment: data.augment, resize, ..Default::default() };
    let train = Loader::new(data.train.clone(), data.norm.clone(), train);
    let val = LoaderConfig { batch_size: 256, resize, ..Default::default() };
    let val = Loader::new(data.val.clone(), data.norm.clone(), val);
    let mut trainer = Trainer::new(arch, tc, train, None)?;
    let bar = progress_bar(true);
    let start = Instant::now();
    let mut last = None;
    for _ in 0..cfg.epochs {
        match trainer.run_epoch(&bar)? {
            Ok(m) => last = Some(m),
            Err(d) => return Err(Error::msg(format!("diverged (NaN loss) at epoch {} step {}", d.epoch + 1, d.step))),
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let val_accuracy = accuracy(&trainer.net, &val)?;
    let last = last.ok_or_else(|| Error::msg("proxy training needs at least one epoch"))?;
    Ok(ProxyResult { val_accuracy, train_loss: last.train_loss, train_seconds, images_per_s: last.images_per_s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::run::save_trainer;
    use testkit::arch::mixnet_s_prefix;
    use testkit::float::max_abs_diff;

    fn data() -> PreparedData {
        let spec = DataSpec {
            source: "default".into(),
            train_per_class: Some(24),
            val_per_class: Some(4),
            augment: Some(true),
            seed: 3,
        };
        PreparedData::load(&spec).unwrap()
    }

    #[test]
    fn resumed_training_ends_where_an_unbroken_run_ends() {
        let (data, cfg) = (data(), TrainConfig::one_cycle(2, 16, 0.05, 11));
        let whole = tempfile::tempdir().unwrap();
        let a = train_to_dir(&mixnet_s_prefix(4), &data, &cfg, whole.path(), false, true).unwrap();

        // Stop after one epoch, as a killed run leaves its directory, then resume.
        let broken = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(
            &mixnet_s_prefix(4),
            cfg.clone(),
            data.train_loader(16, 11, None),
            Some(data.eval_loader(&data.val, 64, None)),
        )
        .unwrap();
        let first = t.run_epoch(&progress_bar(true)).unwrap().unwrap();
        save_trainer(broken.path(), &t, &data.record).unwrap();
        write_metrics(broken.path(), &Metrics { epochs: vec![first], ..Default::default() }).unwrap();
        let b = train_to_dir(&mixnet_s_prefix(4), &data, &cfg, broken.path(), true, true).unwrap();

        let key =
            |m: &Metrics| m.epochs.iter().map(|e| (e.train_loss, e.train_accuracy, e.val_accuracy)).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b));
        assert_eq!(a.test_accuracy, b.test_accuracy);
        let (wa, wb) = (Checkpoint::read(whole.path()).unwrap(), Checkpoint::read(broken.path()).unwrap());
        let w = "classifier.weight";
        assert_eq!(max_abs_diff(&wa.tensors[w], &wb.tensors[w]), 0.0);
    }

    #[test]
    fn a_fine_tuning_run_resumes_after_its_init_source_is_gone() {
        let (arch, data) = (mixnet_s_prefix(4), data());
        let pretrained = tempfile::tempdir().unwrap();
        train_to_dir(&arch, &data, &TrainConfig::one_cycle(1, 16, 0.05, 1), pretrained.path(), false, true).unwrap();
        let init = Some(pretrained.path().to_path_buf());
        let cfg = TrainConfig { init, freeze_until: Some(2), ..TrainConfig::one_cycle(2, 16, 0.05, 2) };
        let dir = tempfile::tempdir().unwrap();
        let val = Some(data.eval_loader(&data.val, 64, None));
        let mut t = Trainer::new(&arch, cfg.clone(), data.train_loader(16, 2, None), val).unwrap();
        let first = t.run_epoch(&progress_bar(true)).unwrap().unwrap();
        write_metrics(dir.path(), &Metrics { epochs: vec![first], ..Default::default() }).unwrap();
        save_trainer(dir.path(), &t, &data.record).unwrap();
        drop(pretrained);
        let m = train_to_dir(&arch, &data, &cfg, dir.path(), true, true).unwrap();
        assert_eq!(m.epochs.len(), 2);
        assert_eq!(Checkpoint::read(dir.path()).unwrap().record.train, Some(cfg), "the record keeps --init");
    }

    #[test]
    fn proxy_training_learns_and_is_deterministic() {
        let data = data();
        let cfg = ProxyConfig { epochs: 2, batch: 16, max_lr: 0.05, resolution: None };
        let a = proxy_evaluate(&mixnet_s_prefix(4), &cfg, &data, 5).unwrap();
        let b = proxy_evaluate(&mixnet_s_prefix(4), &cfg, &data, 5).unwrap();
        assert_eq!((a.val_accuracy, a.train_loss), (b.val_accuracy, b.train_loss));
        assert!(a.val_accuracy > 0.2, "10 classes, chance is 0.1: got {}", a.val_accuracy);
    }

    #[test]
    fn a_checkpoint_of_another_architecture_is_refused() {
        let (data, cfg) = (data(), TrainConfig::one_cycle(1, 16, 0.05, 1));
        let dir = tempfile::tempdir().unwrap();
        train_to_dir(&mixnet_s_prefix(4), &data, &cfg, dir.path(), false, true).unwrap();
        let mut other = mixnet_s_prefix(4);
        other.blocks.truncate(3);
        let err = train_to_dir(&other, &data, &cfg, dir.path(), true, true).err().unwrap().to_string();
        // candle appends a backtrace when RUST_BACKTRACE is set; the CLI prints the first line.
        let line = err.lines().next().unwrap();
        assert!(line.contains("another architecture") && line.contains("model.safetensors"), "{err}");
    }
}
