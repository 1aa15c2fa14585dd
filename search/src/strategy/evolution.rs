//! Regularised (aging) evolution (Real et al. 2019): the first `population` candidates are
//! random; afterwards each child is the best of `sample_size` members drawn uniformly from the
//! population, with one decision changed to a different option. Each observed child joins the
//! population and the oldest member leaves, so good but old genes cannot dominate forever.

use std::collections::VecDeque;

use evaluator::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::{parse_state, uniform_choices, Observation, Strategy};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvolutionConfig {
    pub population: usize,
    /// Tournament size.
    pub sample_size: usize,
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        EvolutionConfig { population: 50, sample_size: 10 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evolution {
    config: EvolutionConfig,
    num_options: Vec<usize>,
    /// Oldest first.
    population: VecDeque<Observation>,
    proposed: usize,
    rng: SplitMix64,
}

impl Evolution {
    pub fn new(config: EvolutionConfig, num_options: &[usize], rng: SplitMix64) -> Self {
        let config = EvolutionConfig { population: config.population.max(1), sample_size: config.sample_size.max(1) };
        Evolution { config, num_options: num_options.to_vec(), population: VecDeque::new(), proposed: 0, rng }
    }

    fn child(&mut self) -> Vec<usize> {
        let mut parent: Option<&Observation> = None;
        for _ in 0..self.config.sample_size {
            let member = &self.population[self.rng.below_by_modulo(self.population.len())];
            if !matches!(parent, Some(p) if crate::reward::rank(p.reward, member.reward).is_ge()) {
                parent = Some(member);
            }
        }
        let mut child = parent.expect("population is not empty").choices.clone();
        let mutable: Vec<usize> = (0..child.len()).filter(|&d| self.num_options[d] > 1).collect();
        if let Some(&d) = mutable.get(self.rng.below_by_modulo(mutable.len().max(1))) {
            // Shift by 1..n so the new option always differs from the parent's.
            child[d] = (child[d] + 1 + self.rng.below_by_modulo(self.num_options[d] - 1)) % self.num_options[d];
        }
        child
    }
}

impl Strategy for Evolution {
    fn propose(&mut self, n: usize) -> Vec<Vec<usize>> {
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let warmup = self.proposed < self.config.population || self.population.is_empty();
            batch.push(if warmup { uniform_choices(&self.num_options, &mut self.rng) } else { self.child() });
            self.proposed += 1;
        }
        batch
    }

    fn observe(&mut self, batch: &[Observation]) {
        for obs in batch {
            self.population.push_back(obs.clone());
            if self.population.len() > self.config.population {
                self.population.pop_front();
            }
        }
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("evolution state serialises")
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        *self = parse_state("evolution", state)?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "evolution"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_differ_from_a_member_in_exactly_one_decision() {
        let cfg = EvolutionConfig { population: 4, sample_size: 2 };
        let mut evo = Evolution::new(cfg, &[3, 1, 5], SplitMix64::scrambled(3));
        let first = evo.propose(4);
        evo.observe(
            &first
                .iter()
                .map(|c| Observation { choices: c.clone(), reward: c[0] as f64, failed: false })
                .collect::<Vec<_>>(),
        );
        for child in evo.propose(20) {
            // A child may coincide with another member, but it is one mutation away from its parent.
            let one_away = first.iter().any(|p| p.iter().zip(&child).filter(|(a, b)| a != b).count() == 1);
            assert!(one_away, "{child:?}");
            assert_eq!(child[1], 0);
        }
    }
}
