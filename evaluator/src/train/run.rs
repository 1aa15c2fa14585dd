//! A training run on disk: `nas train` writes, after every epoch and atomically,
//! `model.safetensors` (weights, optimiser buffers under `optim/`, EMA shadows under `ema/`,
//! and the checkpoint record in the header), a readable `checkpoint.json` copy of that record,
//! and `metrics.json`. The safetensors file is the unit of truth: one rename makes weights and
//! record consistent, so a run killed at any instant resumes from its last whole epoch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use space::Arch;

use super::checkpoint::{load_tensors, save_tensors, write_atomic};
use super::fit::DataSpec;
use super::optim::OptimizerState;
use super::trainer::{EpochMetrics, TrainConfig, Trainer};
use crate::model::MixNet;

pub const CHECKPOINT_FORMAT: &str = "mixnas.checkpoint/1";
const RECORD_KEY: &str = "mixnas.checkpoint";

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

/// Writes weights (+ optimiser and EMA state when given) and the record, atomically.
pub fn save(dir: &Path, net: &MixNet, record: &CheckpointRecord, extra: Vec<(String, Tensor)>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let json = serde_json::to_string_pretty(record).map_err(Error::wrap)?;
    let mut tensors = net.state();
    tensors.extend(extra);
    let meta = HashMap::from([(RECORD_KEY.to_string(), json.clone())]);
    save_tensors(&model_path(dir), &tensors, Some(meta))?;
    write_atomic(&dir.join("checkpoint.json"), (json + "\n").as_bytes()).map_err(|e| io_err(dir, e))
}

/// Saves a trainer's whole state after an epoch.
pub fn save_trainer(dir: &Path, t: &Trainer, data: &DataRecord) -> Result<()> {
    let (state, mut extra) = t.optimizer.export()?;
    extra.iter_mut().for_each(|(n, _)| *n = format!("optim/{n}"));
    if let Some(ema) = &t.ema {
        extra.extend(ema.tensors(&t.net.trainable())?.into_iter().map(|(n, v)| (format!("ema/{n}"), v)));
    }
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
    save(dir, &t.net, &record, extra)
}

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

    /// The model tensors (no `optim/` or `ema/` sections).
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
        t.net.load_named(&self.model_tensors()).map_err(|e| io_err(&path, e))?;
        if let Some(state) = &self.record.optimizer {
            t.optimizer.import(state, &self.section("optim"))?;
        }
        if let (Some(ema), Some(updates)) = (&mut t.ema, self.record.ema_updates) {
            ema.load(&self.section("ema"), updates)?;
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
