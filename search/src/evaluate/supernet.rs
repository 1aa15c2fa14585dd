//! `--evaluator supernet:DIR`: a candidate's accuracy read from the weights it inherits from a
//! supernet trained by `nas supernet train` (see `evaluator::supernet`), on the validation
//! split held out of that supernet's training data; latency as for the proxy.

use std::path::Path;

use evaluator::latency::{LatencyService, LatencySetting};
use evaluator::supernet::score::SupernetScorer;

use super::{Evaluation, TrialEvaluator, TrialSpec};

/// Batches of 128 training images that re-estimate each candidate's BN statistics.
pub const CALIBRATION_BATCHES: usize = 4;

pub struct SupernetEvaluator {
    pub scorer: SupernetScorer,
    pub latency: LatencySetting,
    pub service: LatencyService,
}

impl SupernetEvaluator {
    /// Opens the supernet in `dir` on its data at `data`; errors are one line naming the input.
    pub fn open(dir: &str, data: &str, latency: LatencySetting, service: LatencyService) -> Result<Self, String> {
        let scorer = SupernetScorer::open(Path::new(dir), data, CALIBRATION_BATCHES)?;
        Ok(Self { scorer, latency, service })
    }

    pub fn describe(&self, dir: &str) -> String {
        let r = &self.scorer.record;
        format!(
            "supernet {dir} ({} epochs over {}): BN re-estimated on {} training images, accuracy on {} validation images",
            r.epoch,
            r.space_source,
            self.scorer.calibration_images(),
            self.scorer.val_images
        )
    }
}

impl TrialEvaluator for SupernetEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let s = self.scorer.score(&trial.arch).map_err(|e| e.to_string())?;
        let latency = self.service.latency(&trial.arch, &self.latency)?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        let mut details = serde_json::Map::new();
        details.insert("val_loss".into(), s.val_loss.into());
        Ok(Evaluation {
            score: s.val_accuracy,
            latency_ms: latency.ms,
            latency_source: latency.source.as_str().to_string(),
            macs: cost.macs,
            params: cost.params,
            train_seconds: s.seconds,
            details,
        })
    }

    fn name(&self) -> &str {
        "supernet"
    }
}
