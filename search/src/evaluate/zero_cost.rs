//! `--evaluator zero:synflow` and `zero:naswot`: a zero-cost score of the untrained network
//! instead of training (see `evaluator::zero_cost`), latency as for the proxy. The raw score is
//! in the details. A raw score has no accuracy scale (NASWOT's is a log-determinant near 1,400
//! whose networks differ by tens), so the score the reward reads (in place of an accuracy,
//! `ValueKind::Score`) is the raw score standardised against a reference sample of the searched space and squashed by the logistic:
//! `1 / (1 + exp(-(v - mean) / sd))`, `v = naswot` or `log10(1 + synflow)`. A network as good as
//! the sample's average reads 0.5, one two standard deviations above 0.88. That is an order, not
//! an accuracy: the soft reward's 5% per latency doubling is then worth about a fifth of a
//! standard deviation, too little to hold a search near its target (on NAS-Bench-Macro it picks
//! the largest network, 1.8x over), which is why the default reward is the hard constraint. A
//! singular NASWOT kernel (`-inf`, details `null`) reads 0.

use candle_core::Tensor;
use evaluator::latency::{LatencyService, LatencySetting};
use evaluator::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use space::{Arch, SearchSpace};

use super::{Evaluation, TrialEvaluator, TrialSpec};

/// Which score, with what it needs.
pub enum ZeroCost {
    /// SynFlow on an all-ones input of this square side.
    Synflow { resolution: usize },
    /// NASWOT on this batch of training images (`[B, C, H, W]`), the same for every trial so
    /// that scores differ by network and initialisation only.
    Naswot { images: Tensor },
}

/// Networks in the reference sample that sets a run's [`ScoreScale`].
pub const REFERENCE_NETWORKS: usize = 16;

/// The sub-stream of the run's seed that draws the reference sample and its initialisations.
const REFERENCE_STREAM: u64 = 0x5a45_524f; // "ZERO"

/// Mean and standard deviation of the scale-free score (`v` above) over a reference sample of
/// the searched space; recorded in the run config (`proxy.zero_scale`) so that a resumed run
/// and remote workers read accuracies on the same scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreScale {
    pub mean: f64,
    pub sd: f64,
    /// Reference networks with a finite score.
    pub networks: usize,
}

impl ScoreScale {
    /// The score in [0, 1] the reward reads for scale-free value `v`.
    pub fn score(&self, v: f64) -> f64 {
        match v.is_finite() {
            true => 1.0 / (1.0 + (-(v - self.mean) / self.sd).exp()),
            false => 0.0,
        }
    }

    /// Mean and sample standard deviation of the finite `values`; at least two must differ.
    pub fn of(values: &[f64]) -> Result<ScoreScale, String> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        let mean = finite.iter().sum::<f64>() / n.max(1) as f64;
        let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        match n >= 2 && var > 0.0 {
            true => Ok(ScoreScale { mean, sd: var.sqrt(), networks: n }),
            false => Err(format!(
                "zero-cost reference sample: {n} of {} networks have a finite score and they do not differ, so the score has no scale",
                values.len()
            )),
        }
    }
}

/// The reference sample of `space` for a run seeded `seed`: architectures and the seed each is
/// initialised with.
pub fn reference_sample(space: &SearchSpace, seed: u64) -> Result<Vec<(Arch, u64)>, String> {
    reference_drawn(seed, |rng| space.decode(&space.sample(rng)).map_err(|e| e.to_string()))
}

/// [`REFERENCE_NETWORKS`] architectures drawn by `draw` from the reference stream of `seed`,
/// each with its initialisation seed.
pub fn reference_drawn(
    seed: u64,
    mut draw: impl FnMut(&mut SplitMix64) -> Result<Arch, String>,
) -> Result<Vec<(Arch, u64)>, String> {
    let mut rng = SplitMix64::derive(seed, REFERENCE_STREAM);
    (0..REFERENCE_NETWORKS)
        .map(|_| {
            let arch = draw(&mut rng)?;
            Ok((arch, rng.next_u64()))
        })
        .collect()
}

/// Scores with a zero-cost score, for `classes` outputs from RGB input.
pub struct ZeroCostEvaluator {
    pub cost: ZeroCost,
    pub classes: usize,
    pub latency: LatencySetting,
    pub service: LatencyService,
    /// Maps the raw score into [0, 1]; `None` until calibrated.
    pub scale: Option<ScoreScale>,
}

impl ZeroCostEvaluator {
    /// The raw score and the scale-free value the scale standardises.
    fn raw(&self, arch: &Arch, seed: u64) -> candle_core::Result<(f64, f64)> {
        Ok(match &self.cost {
            ZeroCost::Synflow { resolution } => {
                let score = evaluator::zero_cost::synflow(arch, *resolution, 3, self.classes, seed)?;
                (score, (1.0 + score).log10())
            }
            ZeroCost::Naswot { images } => {
                let score = evaluator::zero_cost::naswot(arch, images, self.classes, seed)?;
                (score, score)
            }
        })
    }

    fn detail_name(&self) -> &'static str {
        match self.cost {
            ZeroCost::Synflow { .. } => "synflow",
            ZeroCost::Naswot { .. } => "naswot",
        }
    }

    /// The scale of this score over `reference` (from [`reference_sample`]).
    pub fn calibrate(&self, reference: &[(Arch, u64)]) -> Result<ScoreScale, String> {
        let values = reference
            .iter()
            .map(|(arch, seed)| {
                self.raw(arch, *seed)
                    .map(|(_, v)| v)
                    .map_err(|e| format!("{}: {e}", arch.name.as_deref().unwrap_or("reference network")))
            })
            .collect::<Result<Vec<f64>, String>>()?;
        ScoreScale::of(&values)
    }
}

impl TrialEvaluator for ZeroCostEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let Some(scale) = &self.scale else { return Err("zero-cost evaluator used before calibration".into()) };
        let start = std::time::Instant::now();
        let (score, value) = self.raw(&trial.arch, trial.seed).map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        let latency = self.service.latency(&trial.arch, &self.latency)?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        let mut details = serde_json::Map::new();
        // A non-finite score (a singular NASWOT kernel) is JSON `null`.
        details.insert(self.detail_name().into(), score.into());
        Ok(Evaluation {
            score: scale.score(value),
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
