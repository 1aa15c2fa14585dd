//! A closed-form stand-in for proxy training and latency measurement: instant, deterministic
//! and identical on every machine, for testing strategies and the runner. Never the default.
//!
//! With `M` MACs (millions), `P` parameters (millions), `A` activations (millions) at 224x224
//! and `L` blocks:
//!
//! - latency_ms = 0.08 M + 0.5 P + 1.0 A + 0.25 L (MixNet-S: about 31 ms; MixNet-L: about 62 ms)
//! - accuracy = 0.85 - 0.26 (M / 100)^-0.5            saturating in compute
//!   + 0.006 per stride-2 block with mixed kernels      MixConv where resolution drops
//!   + 0.0015 per block with SE (at most 0.012)
//!   + 0.001 per swish block in the second half
//!   - 0.01 per block below 12 or above 24              too shallow / too deep
//!   + N(0, 0.003) noise seeded by the trial seed, clamped to [0.05, 0.95].
//!
//! Test hook (off unless set; for the integration tests only): `MIXNAS_SURROGATE_DELAY_MS=N`
//! sleeps N ms in every evaluation, so a test can kill `nas search` while trials are running.

use super::{Evaluation, TrialEvaluator, TrialSpec};
use evaluator::rng::SplitMix64;

/// The surrogate evaluator; see the module doc for its formula.
#[derive(Clone, Copy, Debug, Default)]
pub struct SurrogateEvaluator;

/// The surrogate latency of `arch`, in milliseconds.
pub fn surrogate_latency_ms(arch: &space::Arch) -> f64 {
    let t = space::cost(arch, 224).total;
    let (m, p, a) = (t.macs as f64 / 1e6, t.params as f64 / 1e6, t.activations as f64 / 1e6);
    0.08 * m + 0.5 * p + 1.0 * a + 0.25 * arch.blocks.len() as f64
}

/// The surrogate accuracy of `arch` before noise.
pub fn surrogate_accuracy(arch: &space::Arch) -> f64 {
    let macs = space::cost(arch, 224).total.macs as f64 / 1e6;
    let blocks = &arch.blocks;
    let mixed_reductions = blocks.iter().filter(|b| b.stride == 2 && b.kernels.len() > 1).count();
    let se = blocks.iter().filter(|b| b.se.is_some()).count();
    let late_swish = blocks.iter().skip(blocks.len() / 2).filter(|b| b.act == space::Activation::Swish).count();
    let depth = blocks.len() as f64;
    let depth_penalty = (12.0 - depth).max(0.0) + (depth - 24.0).max(0.0);
    0.85 - 0.26 * (macs.max(1.0) / 100.0).powf(-0.5)
        + 0.006 * mixed_reductions as f64
        + (0.0015 * se as f64).min(0.012)
        + 0.001 * late_swish as f64
        - 0.01 * depth_penalty
}

/// A standard normal draw (Box-Muller) from the trial's seed.
fn noise(seed: u64) -> f64 {
    let mut rng = SplitMix64::derive(seed, 0x5355_5252);
    let (u1, u2) = (1.0 - rng.uniform(), rng.uniform());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl TrialEvaluator for SurrogateEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        if let Some(ms) = std::env::var("MIXNAS_SURROGATE_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let total = space::cost(&trial.arch, 224).total;
        let accuracy = surrogate_accuracy(&trial.arch) + 0.003 * noise(trial.seed);
        Ok(Evaluation {
            score: accuracy.clamp(0.05, 0.95),
            latency_ms: surrogate_latency_ms(&trial.arch),
            latency_source: "surrogate".into(),
            macs: total.macs,
            params: total.params,
            train_seconds: 0.0,
            details: Default::default(),
        })
    }

    fn name(&self) -> &str {
        "surrogate"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(arch: space::Arch, seed: u64) -> TrialSpec {
        TrialSpec { id: 0, arch, choices: vec![], seed, threads: 1, epochs: None }
    }

    #[test]
    fn presets_land_in_plausible_ranges_and_seeds_repeat() {
        let s = SurrogateEvaluator.evaluate(&trial(space::presets::mixnet_s(), 1)).unwrap();
        assert!((20.0..40.0).contains(&s.latency_ms), "{}", s.latency_ms);
        let l = surrogate_latency_ms(&space::presets::mixnet_l());
        assert!(l > s.latency_ms * 1.5, "{l}");
        let m = SurrogateEvaluator.evaluate(&trial(space::presets::mixnet_m(), 1)).unwrap();
        assert!(m.score > s.score && s.score > 0.6, "{} {}", m.score, s.score);
        assert_eq!(SurrogateEvaluator.evaluate(&trial(space::presets::mixnet_s(), 1)).unwrap(), s);
        assert_ne!(SurrogateEvaluator.evaluate(&trial(space::presets::mixnet_s(), 2)).unwrap(), s);
    }

    #[test]
    fn any_space_is_scored_including_layer_rows_at_their_own_resolution() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json");
        let space = space::SearchSpace::load(path).unwrap();
        let small = SurrogateEvaluator.evaluate(&trial(space.decode(&[0; 8]).unwrap(), 1)).unwrap();
        let large = SurrogateEvaluator.evaluate(&trial(space.decode(&[2; 8]).unwrap(), 1)).unwrap();
        assert!(small.latency_ms.is_finite() && large.latency_ms > small.latency_ms);
        assert!((0.05..=0.95).contains(&small.score) && large.score > small.score);
    }
}
