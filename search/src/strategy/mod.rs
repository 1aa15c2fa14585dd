//! Strategies propose candidates (one option index per decision of the search space) and learn
//! from their rewards, behind one [`Strategy`] trait: RL controllers (REINFORCE, PPO), random
//! search and regularised evolution.
//!
//! Call order, per batch: `propose(n)` once; the runner evaluates the n candidates; then
//! `observe` once with all n outcomes in trial-id order, failed and invalid ones included
//! (`failed: true`, the penalty reward); then `save`. A strategy never panics on a bad outcome.
//! `save` after `observe` captures everything, RNG included, so `load` + `propose` continues
//! exactly where an uninterrupted run would.

mod evolution;
mod random;
mod rl;

pub use evolution::{Evolution, EvolutionConfig};
pub use random::RandomSearch;
pub use rl::RlStrategy;

use evaluator::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::controller::{ControllerConfig, Update};

/// The outcome of one candidate, as a strategy sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub choices: Vec<usize>,
    pub reward: f64,
    /// Invalid or failed evaluation; `reward` is then the penalty.
    pub failed: bool,
}

pub trait Strategy: Send {
    /// `n` candidates; each has one index per decision, below that decision's option count.
    fn propose(&mut self, n: usize) -> Vec<Vec<usize>>;

    /// The outcomes of the last proposed batch, in the order proposed.
    fn observe(&mut self, batch: &[Observation]);

    /// The complete state (parameters, optimiser, RNG) as JSON.
    fn save(&self) -> serde_json::Value;

    /// Restores a state written by `save` of the same strategy over the same space.
    fn load(&mut self, state: serde_json::Value) -> Result<(), String>;

    fn name(&self) -> &'static str;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    Reinforce,
    Ppo,
    Random,
    Evolution,
}

impl std::str::FromStr for StrategyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.into()))
            .map_err(|_| format!("unknown strategy `{s}` (hint: use reinforce, ppo, random or evolution)"))
    }
}

/// Everything needed to build a strategy; recorded in the run's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StrategyConfig {
    pub kind: StrategyKind,
    pub controller: ControllerConfig,
    pub evolution: EvolutionConfig,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig {
            kind: StrategyKind::Reinforce,
            controller: ControllerConfig::default(),
            evolution: EvolutionConfig::default(),
        }
    }
}

/// A fresh strategy over decisions with `num_options[i]` options each.
pub fn build(config: &StrategyConfig, num_options: &[usize], seed: u64) -> Result<Box<dyn Strategy>, String> {
    if num_options.is_empty() || num_options.contains(&0) {
        return Err("the search space has no decisions, or a decision without options".into());
    }
    let rng = SplitMix64::derive(seed, 0x5354_5241);
    Ok(match config.kind {
        StrategyKind::Random => Box::new(RandomSearch::new(num_options, rng)),
        StrategyKind::Evolution => Box::new(Evolution::new(config.evolution, num_options, rng)),
        StrategyKind::Reinforce => Box::new(RlStrategy::new(&config.controller, Update::Reinforce, num_options, rng)?),
        StrategyKind::Ppo => Box::new(RlStrategy::new(&config.controller, Update::Ppo, num_options, rng)?),
    })
}

/// A uniformly random candidate.
pub(crate) fn uniform_choices(num_options: &[usize], rng: &mut SplitMix64) -> Vec<usize> {
    num_options.iter().map(|&n| rng.below_by_modulo(n)).collect()
}

/// Decodes a JSON state into `T`, naming the strategy on error.
pub(crate) fn parse_state<T: serde::de::DeserializeOwned>(name: &str, state: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(state).map_err(|e| format!("{name} checkpoint: {e}"))
}
