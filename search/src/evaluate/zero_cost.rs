//! `--evaluator zero:synflow` and `zero:naswot`: a zero-cost score of the untrained network
//! instead of training (see `evaluator::zero_cost`), latency as for the proxy. The raw score is
//! in the details; the accuracy the reward reads is a monotone map into [0, 1) that keeps the
//! order and means nothing else: `l / (1 + l)` with `l = log10(1 + synflow)`, and
//! `s / (1 + s)` with `s = naswot` (at least 0), a singular NASWOT kernel (`-inf`, details
//! `null`) mapping to 0.

use candle_core::Tensor;
use evaluator::latency::{LatencyService, LatencySetting};

use super::{Evaluation, TrialEvaluator, TrialSpec};

/// Which score, with what it needs.
pub enum ZeroCost {
    /// SynFlow on an all-ones input of this square side.
    Synflow { resolution: usize },
    /// NASWOT on this batch of training images (`[B, C, H, W]`), the same for every trial so
    /// that scores differ by network and initialisation only.
    Naswot { images: Tensor },
}

/// Scores with a zero-cost score, for `classes` outputs from RGB input.
pub struct ZeroCostEvaluator {
    pub cost: ZeroCost,
    pub classes: usize,
    pub latency: LatencySetting,
    pub service: LatencyService,
}

impl ZeroCostEvaluator {
    /// The raw score, its detail name, and the accuracy the reward reads.
    fn score(&self, trial: &TrialSpec) -> candle_core::Result<(f64, &'static str, f64)> {
        Ok(match &self.cost {
            ZeroCost::Synflow { resolution } => {
                let score = evaluator::zero_cost::synflow(&trial.arch, *resolution, 3, self.classes, trial.seed)?;
                let l = (1.0 + score).log10();
                (score, "synflow", l / (1.0 + l))
            }
            ZeroCost::Naswot { images } => {
                let score = evaluator::zero_cost::naswot(&trial.arch, images, self.classes, trial.seed)?;
                let s = score.max(0.0);
                (score, "naswot", if score.is_finite() { s / (1.0 + s) } else { 0.0 })
            }
        })
    }
}

impl TrialEvaluator for ZeroCostEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let start = std::time::Instant::now();
        let (score, name, accuracy) = self.score(trial).map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        let latency = self.service.latency(&trial.arch, &self.latency)?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        let mut details = serde_json::Map::new();
        // A non-finite score (a singular NASWOT kernel) is JSON `null`.
        details.insert(name.into(), score.into());
        Ok(Evaluation {
            val_accuracy: accuracy,
            latency_ms: latency.ms,
            latency_source: latency.source.as_str().to_string(),
            macs: cost.macs,
            params: cost.params,
            train_seconds: seconds,
            details,
        })
    }

    fn name(&self) -> &str {
        match self.cost {
            ZeroCost::Synflow { .. } => "zero:synflow",
            ZeroCost::Naswot { .. } => "zero:naswot",
        }
    }
}
