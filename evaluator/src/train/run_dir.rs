//! A training run on disk: [`train_to_dir`] (behind `nas train`) writes, after every epoch and
//! atomically, `model.safetensors` (the served model, optimiser buffers under `optim/`, and the
//! checkpoint record in the header), a readable `checkpoint.json` copy of that record, and
//! `metrics.json`. The served model is the one whose accuracy is reported: with an EMA, the
//! averaged weights and BN statistics, while the weights being trained, which a resume needs,
//! go under `raw/`. The safetensors file is the unit of truth: one rename makes weights and
//! record consistent, so a run killed at any instant resumes from its last whole epoch, and the
//! resumed run ends where an unbroken one would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use space::Arch;

use super::optim::OptimizerState;
use super::prepared::{DataRecord, PreparedData};
use super::trainer::{epoch_lines, progress_bar, EpochMetrics, TrainConfig, Trainer};
use crate::checkpoint::{load_tensors, save_tensors, write_atomic};
use crate::model::MixNet;

pub const CHECKPOINT_FORMAT: &str = "mixnas.checkpoint/1";
const RECORD_KEY: &str = "mixnas.checkpoint";

/// The checkpoint record: how to rebuild the network and continue training it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointRecord {
    pub format: String,
    /// The network as built (after proxy adaptation and class count), which the weights fit.
    pub arch: Arch,
    /// The architecture as given, before adaptation (what a resumed run rebuilds from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arch: Option<Arch>,
    /// Epochs completed.
    pub epoch: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_updates: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRecord>,
}

impl CheckpointRecord {
    /// The sizes (height, width) an image went through in training, in order: the stored size
    /// of the data (image folders resize every file to it), then the run's `--resolution`.
    /// Imported ImageNet weights take 224 px; a checkpoint of an older version without its
    /// stored size, the resolution alone.
    pub fn training_sizes(&self) -> Vec<[usize; 2]> {
        let Some(data) = &self.data else { return vec![[224, 224]] };
        let resolution = self.train.as_ref().and_then(|t| t.resolution).map(|r| [r, r]);
        data.image_size.into_iter().chain(resolution).collect()
    }
}

/// Per-epoch metrics and, at the end, the test accuracy.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub epochs: Vec<EpochMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {e}", path.display()))
}

pub fn model_path(dir: &Path) -> PathBuf {
    dir.join("model.safetensors")
}

/// Writes `tensors` (the served model, then any sections) and the record, atomically.
pub fn save(dir: &Path, tensors: &[(String, Tensor)], record: &CheckpointRecord) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let json = serde_json::to_string_pretty(record).map_err(Error::wrap)?;
    let meta = HashMap::from([(RECORD_KEY.to_string(), json.clone())]);
    save_tensors(&model_path(dir), tensors, Some(meta))?;
    write_atomic(&dir.join("checkpoint.json"), (json + "\n").as_bytes()).map_err(|e| io_err(dir, e))
}

/// Saves a trainer's whole state after an epoch.
pub fn save_trainer(dir: &Path, t: &Trainer, data: &DataRecord) -> Result<()> {
    let (state, optim) = t.optimizer.export()?;
    let mut tensors = t.served_state()?;
    if t.ema.is_some() {
        tensors.extend(t.net.state().into_iter().map(|(n, v)| (format!("{RAW}/{n}"), v)));
    }
    tensors.extend(optim.into_iter().map(|(n, v)| (format!("optim/{n}"), v)));
    let record = CheckpointRecord {
        format: CHECKPOINT_FORMAT.into(),
        arch: t.net.arch().clone(),
        source_arch: Some(t.source_arch.clone()),
        epoch: t.epoch,
        train: Some(t.config.clone()),
        optimizer: Some(state),
        ema_updates: t.ema.as_ref().map(|e| e.updates()),
        data: Some(data.clone()),
    };
    save(dir, &tensors, &record)
}

/// The section holding the weights being trained where the served ones are an EMA.
const RAW: &str = "raw";

/// A loaded checkpoint: the record and every tensor in the file.
pub struct Checkpoint {
    pub record: CheckpointRecord,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads `DIR/model.safetensors`; errors name the file.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = model_path(dir);
        if !path.exists() {
            return Err(io_err(
                &path,
                "no checkpoint here (expected a directory written by `nas train` or `nas import-timm`)",
            ));
        }
        let (tensors, meta) = load_tensors(&path)?;
        let json =
            meta.get(RECORD_KEY).ok_or_else(|| io_err(&path, "not a mixnas checkpoint (no record in its header)"))?;
        let record: CheckpointRecord = serde_json::from_str(json).map_err(|e| io_err(&path, e))?;
        if record.format != CHECKPOINT_FORMAT {
            return Err(io_err(
                &path,
                format!("checkpoint format {:?}; this mixnas reads {CHECKPOINT_FORMAT:?}", record.format),
            ));
        }
        Ok(Self { record, tensors })
    }

    /// Tensors whose names start with `prefix/`, with the prefix removed.
    pub fn section(&self, prefix: &str) -> HashMap<String, Tensor> {
        let p = format!("{prefix}/");
        self.tensors.iter().filter_map(|(k, v)| k.strip_prefix(&p).map(|n| (n.to_string(), v.clone()))).collect()
    }

    /// The served model's tensors (no `optim/` or `raw/` sections).
    pub fn model_tensors(&self) -> HashMap<String, Tensor> {
        self.tensors.iter().filter(|(k, _)| !k.contains('/')).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The network with the checkpoint's weights, ready for eval.
    pub fn network(&self, dir: &Path) -> Result<MixNet> {
        let net = MixNet::new(&self.record.arch, 0, &Device::Cpu)?;
        net.load_named(&self.model_tensors()).map_err(|e| io_err(&model_path(dir), e))?;
        Ok(net)
    }

    /// Puts the weights, optimiser and EMA state into `t`, which must be built for the same arch.
    pub fn restore(&self, dir: &Path, t: &mut Trainer) -> Result<()> {
        let path = model_path(dir);
        if &self.record.arch != t.net.arch() {
            return Err(io_err(&path, "the checkpoint is of another architecture than this run"));
        }
        match (&mut t.ema, self.record.ema_updates) {
            (Some(ema), Some(updates)) => {
                let raw = self.section(RAW);
                if raw.is_empty() {
                    return Err(io_err(&path, "an EMA checkpoint without its `raw/` training weights cannot resume (written by an older mixnas?); train it again"));
                }
                t.net.load_named(&raw).map_err(|e| io_err(&path, e))?;
                ema.load(&self.model_tensors(), updates).map_err(|e| io_err(&path, e))?;
            }
            _ => t.net.load_named(&self.model_tensors()).map_err(|e| io_err(&path, e))?,
        }
        if let Some(state) = &self.record.optimizer {
            t.optimizer.import(state, &self.section("optim"))?;
        }
        t.epoch = self.record.epoch;
        Ok(())
    }
}

pub fn write_metrics(dir: &Path, metrics: &Metrics) -> Result<()> {
    let json = serde_json::to_string_pretty(metrics).map_err(Error::wrap)? + "\n";
    write_atomic(&dir.join("metrics.json"), json.as_bytes()).map_err(|e| io_err(dir, e))
}

pub fn read_metrics(dir: &Path) -> Result<Metrics> {
    let path = dir.join("metrics.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io_err(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metrics::default()),
        Err(e) => Err(io_err(&path, e)),
    }
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
            Ok(m) => {
                if epoch_lines(quiet) {
                    eprintln!("{}", m.line(cfg.epochs));
                }
                metrics.epochs.push(m);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures::small_data;
    use testkit::arch::mixnet_s_prefix;
    use testkit::float::max_abs_diff;

    #[test]
    fn resumed_training_ends_where_an_unbroken_run_ends() {
        let (data, cfg) = (small_data(), TrainConfig::one_cycle(2, 16, 0.05, 11));
        let whole = tempfile::tempdir().unwrap();
        let a = train_to_dir(&mixnet_s_prefix(4), &data, &cfg, whole.path(), false, true).unwrap();

        let broken = tempfile::tempdir().unwrap();
        let b = stopped_and_resumed(&data, &cfg, broken.path());

        let key =
            |m: &Metrics| m.epochs.iter().map(|e| (e.train_loss, e.train_accuracy, e.val_accuracy)).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b));
        assert_eq!(a.test_accuracy, b.test_accuracy);
        let (wa, wb) = (Checkpoint::read(whole.path()).unwrap(), Checkpoint::read(broken.path()).unwrap());
        let w = "classifier.weight";
        assert_eq!(max_abs_diff(&wa.tensors[w], &wb.tensors[w]), 0.0);
    }

    /// A run stopped after its first epoch, as a kill leaves it, then resumed to the end.
    fn stopped_and_resumed(data: &PreparedData, cfg: &TrainConfig, dir: &Path) -> Metrics {
        let val = Some(data.eval_loader(&data.val, 64, None));
        let mut t = Trainer::new(&mixnet_s_prefix(4), cfg.clone(), data.train_loader(16, cfg.seed, None), val).unwrap();
        let first = t.run_epoch(&progress_bar(true)).unwrap().unwrap();
        save_trainer(dir, &t, &data.record).unwrap();
        write_metrics(dir, &Metrics { epochs: vec![first], ..Default::default() }).unwrap();
        train_to_dir(&mixnet_s_prefix(4), data, cfg, dir, true, true).unwrap()
    }

    #[test]
    fn with_an_ema_the_checkpoint_serves_the_averages_and_resumes_exactly() {
        let data = small_data();
        let cfg = TrainConfig { ema_decay: Some(0.9), ..TrainConfig::one_cycle(2, 16, 0.05, 5) };
        let whole = tempfile::tempdir().unwrap();
        let a = train_to_dir(&mixnet_s_prefix(4), &data, &cfg, whole.path(), false, true).unwrap();
        let ckpt = Checkpoint::read(whole.path()).unwrap();
        let served = ckpt.network(whole.path()).unwrap();
        let test = data.eval_loader(&data.test, 256, None);
        assert_eq!(Some(super::super::trainer::accuracy(&served, &test).unwrap()), a.test_accuracy);
        // The averages, BN statistics included, are not the weights kept for resuming.
        let raw = ckpt.section(RAW);
        assert_eq!(raw.len(), ckpt.model_tensors().len());
        for name in ["stem.bn.running_mean", "head.bn.running_var", "classifier.weight"] {
            assert!(max_abs_diff(&ckpt.tensors[name], &raw[name]) > 0.0, "{name}: served = raw");
        }

        let broken = tempfile::tempdir().unwrap();
        let b = stopped_and_resumed(&data, &cfg, broken.path());
        assert_eq!(a.test_accuracy, b.test_accuracy);
        let again = Checkpoint::read(broken.path()).unwrap();
        assert_eq!(again.tensors.len(), ckpt.tensors.len());
        for (name, t) in &ckpt.tensors {
            assert_eq!(max_abs_diff(t, &again.tensors[name]), 0.0, "{name}");
        }
    }

    #[test]
    fn a_fine_tuning_run_resumes_after_its_init_source_is_gone() {
        let data = small_data();
        let pretrained = tempfile::tempdir().unwrap();
        train_to_dir(
            &mixnet_s_prefix(4),
            &data,
            &TrainConfig::one_cycle(1, 16, 0.05, 1),
            pretrained.path(),
            false,
            true,
        )
        .unwrap();
        let init = Some(pretrained.path().to_path_buf());
        let cfg = TrainConfig { init, freeze_until: Some(2), ..TrainConfig::one_cycle(2, 16, 0.05, 2) };
        let dir = tempfile::tempdir().unwrap();
        let val = Some(data.eval_loader(&data.val, 64, None));
        let mut t = Trainer::new(&mixnet_s_prefix(4), cfg.clone(), data.train_loader(16, 2, None), val).unwrap();
        let first = t.run_epoch(&progress_bar(true)).unwrap().unwrap();
        write_metrics(dir.path(), &Metrics { epochs: vec![first], ..Default::default() }).unwrap();
        save_trainer(dir.path(), &t, &data.record).unwrap();
        drop(pretrained);
        let m = train_to_dir(&mixnet_s_prefix(4), &data, &cfg, dir.path(), true, true).unwrap();
        assert_eq!(m.epochs.len(), 2);
        assert_eq!(Checkpoint::read(dir.path()).unwrap().record.train, Some(cfg), "the record keeps --init");
    }

    #[test]
    fn a_checkpoint_of_another_architecture_is_refused() {
        let (data, cfg) = (small_data(), TrainConfig::one_cycle(1, 16, 0.05, 1));
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
