//! `--evaluator zero:synflow`: a zero-cost score of the untrained network instead of training
//! (see `evaluator::zero_cost`), latency as for the proxy. The raw score is in the details; the
//! accuracy the reward reads is the monotone map `l / (1 + l)`, `l = log10(1 + score)`, which
//! keeps the order in [0, 1) and means nothing else.

use evaluator::latency::{LatencyService, LatencySetting};

use super::{Evaluation, TrialEvaluator, TrialSpec};

/// Scores with SynFlow at the proxy's resolution, for `classes` outputs from RGB input.
pub struct ZeroCostEvaluator {
    pub resolution: usize,
    pub classes: usize,
    pub latency: LatencySetting,
    pub service: LatencyService,
}

impl TrialEvaluator for ZeroCostEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let start = std::time::Instant::now();
        let score = evaluator::zero_cost::synflow(&trial.arch, self.resolution, 3, self.classes, trial.seed)
            .map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        let latency = self.service.latency(&trial.arch, &self.latency)?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        let l = (1.0 + score).log10();
        let mut details = serde_json::Map::new();
        details.insert("synflow".into(), score.into());
        Ok(Evaluation {
            val_accuracy: l / (1.0 + l),
            latency_ms: latency.ms,
            latency_source: latency.source.as_str().to_string(),
            macs: cost.macs,
            params: cost.params,
            train_seconds: seconds,
            details,
        })
    }

    fn name(&self) -> &str {
        "zero:synflow"
    }
}
