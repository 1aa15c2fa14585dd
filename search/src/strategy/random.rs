//! Random search: every decision uniform and independent. The bar the others must clear.

use evaluator::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::{parse_state, uniform_choices, Observation, Strategy};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RandomSearch {
    num_options: Vec<usize>,
    rng: SplitMix64,
}

impl RandomSearch {
    pub fn new(num_options: &[usize], rng: SplitMix64) -> Self {
        RandomSearch { num_options: num_options.to_vec(), rng }
    }
}

impl Strategy for RandomSearch {
    fn propose(&mut self, n: usize) -> Vec<Vec<usize>> {
        (0..n).map(|_| uniform_choices(&self.num_options, &mut self.rng)).collect()
    }

    fn observe(&mut self, _batch: &[Observation]) {}

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("random search state serialises")
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        *self = parse_state("random", state)?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "random"
    }
}
