//! A candidate scored by the supernet's weights: its subnet copied out, batch-norm statistics
//! re-estimated on a fixed set of training batches (the same for every candidate), then
//! accuracy and loss on the validation split held out of the supernet's training data.

use std::path::Path;
use std::time::Instant;

use candle_core::{Error, Result, Tensor};
use space::Arch;

use super::train::{SupernetCheckpoint, SupernetRecord};
use super::SuperNet;
use crate::data::Loader;
use crate::train::loss::{cross_entropy, top1_correct};
use crate::train::prepared::{DataSpec, PreparedData};

/// Batches of this many training images (fewer if the split is smaller) re-estimate a
/// candidate's BN statistics.
pub const CALIBRATION_BATCH: usize = 128;

/// What scoring one candidate measured.
#[derive(Clone, Debug, PartialEq)]
pub struct SubnetScore {
    pub val_accuracy: f64,
    /// Mean cross-entropy on the validation split.
    pub val_loss: f64,
    pub seconds: f64,
}

/// A trained supernet ready to score candidates.
pub struct SupernetScorer {
    pub net: SuperNet,
    pub record: SupernetRecord,
    calibration: Vec<Tensor>,
    val: Loader,
    pub val_images: usize,
}

impl SupernetScorer {
    /// Opens the supernet in `dir` on its training data found at `source` (the recorded cut is
    /// re-made there, and must give the recorded fingerprint, so validation images were never
    /// trained on). `batches` of [`CALIBRATION_BATCH`] images re-estimate BN per candidate.
    pub fn open(dir: &Path, source: &str, batches: usize) -> std::result::Result<Self, String> {
        let ckpt = SupernetCheckpoint::read(dir).map_err(|e| e.to_string())?;
        let record = ckpt.record.clone();
        let spec = DataSpec { source: source.to_string(), ..record.data.spec.clone() };
        let data = PreparedData::load(&spec).map_err(|e| e.to_string())?;
        if data.record.fingerprint != record.data.fingerprint {
            return Err(format!(
                "{source}: not the data the supernet in {} was trained on (fingerprint {}, recorded {})",
                dir.display(),
                data.record.fingerprint,
                record.data.fingerprint
            ));
        }
        let net = ckpt.network(dir).map_err(|e| e.to_string())?;
        Ok(Self::new(net, record, &data, batches))
    }

    /// A scorer over `data` (the supernet's own training data).
    pub fn new(net: SuperNet, record: SupernetRecord, data: &PreparedData, batches: usize) -> Self {
        let resolution = Some(record.config.resolution);
        let batch = CALIBRATION_BATCH.min(data.train.len()).max(1);
        let loader = data.train_loader(batch, record.config.seed ^ 0xCA11, resolution);
        let calibration = loader.epoch(0).take(batches.max(1)).map(|(x, _)| x).collect();
        let val = data.eval_loader(&data.val, 256, resolution);
        Self { net, record, calibration, val, val_images: data.val.len() }
    }

    pub fn calibration_images(&self) -> usize {
        self.calibration.iter().map(|x| x.dim(0).unwrap_or(0)).sum()
    }

    /// Scores `arch`, which must be a point of the supernet's space.
    pub fn score(&self, arch: &Arch) -> Result<SubnetScore> {
        let start = Instant::now();
        let space = self.net.space();
        let Some(choices) = space.encode(arch) else {
            return Err(Error::msg(format!(
                "{}: not a point of the supernet's space {} ({})",
                arch.name.as_deref().unwrap_or("the architecture"),
                space.name,
                space.source
            )));
        };
        let subnet = self.net.subnet(&choices)?;
        subnet.recalibrate_batch_norms(self.calibration.iter().cloned())?;
        let frozen = subnet.eval_net()?;
        let (mut correct, mut loss, mut seen) = (0usize, 0.0, 0usize);
        for (x, y) in self.val.eval() {
            let logits = crate::on_pool(|| frozen.forward(&x))?;
            let n = y.dim(0)?;
            correct += top1_correct(&logits, &y)?;
            loss += cross_entropy(&logits, &y, 0.0)?.to_scalar::<f32>()? as f64 * n as f64;
            seen += n;
        }
        let seen = seen.max(1) as f64;
        Ok(SubnetScore {
            val_accuracy: correct as f64 / seen,
            val_loss: loss / seen,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}
