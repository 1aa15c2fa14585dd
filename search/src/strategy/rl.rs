//! The RL strategies: the LSTM controller samples candidates and learns from their rewards
//! (REINFORCE or PPO). Failed candidates teach it too, with the penalty reward.

use evaluator::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::{parse_state, Observation, Strategy};
use crate::controller::{Controller, ControllerConfig, ControllerState, Update};

pub struct RlStrategy {
    controller: Controller,
    update: Update,
    num_options: Vec<usize>,
    rng: SplitMix64,
}

#[derive(Serialize, Deserialize)]
struct RlState {
    controller: ControllerState,
    rng: SplitMix64,
}

impl RlStrategy {
    pub fn new(
        config: &ControllerConfig,
        update: Update,
        num_options: &[usize],
        mut rng: SplitMix64,
    ) -> Result<Self, String> {
        let controller =
            Controller::new(config, update, num_options, &mut rng).map_err(|e| format!("controller: {e}"))?;
        Ok(RlStrategy { controller, update, num_options: num_options.to_vec(), rng })
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    fn in_space(&self, choices: &[usize]) -> bool {
        choices.len() == self.num_options.len() && choices.iter().zip(&self.num_options).all(|(c, n)| c < n)
    }
}

impl Strategy for RlStrategy {
    fn propose(&mut self, n: usize) -> Vec<Vec<usize>> {
        self.controller.sample(n, &mut self.rng).expect("sampling a CPU policy of valid shapes cannot fail")
    }

    fn observe(&mut self, batch: &[Observation]) {
        let batch: Vec<(Vec<usize>, f64)> = batch
            .iter()
            .filter(|o| self.in_space(&o.choices))
            .map(|o| (o.choices.clone(), if o.reward.is_finite() { o.reward } else { 0.0 }))
            .collect();
        if let Err(e) = self.controller.learn(&batch) {
            tracing::warn!("controller update skipped: {e}");
        }
    }

    fn save(&self) -> serde_json::Value {
        let controller = self.controller.state().expect("reading CPU parameters cannot fail");
        serde_json::to_value(RlState { controller, rng: self.rng.clone() }).expect("controller state serialises")
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        let state: RlState = parse_state(self.name(), state)?;
        self.controller.restore(state.controller).map_err(|e| e.to_string())?;
        self.rng = state.rng;
        Ok(())
    }

    fn name(&self) -> &'static str {
        match self.update {
            Update::Ppo => "ppo",
            Update::Reinforce => "reinforce",
        }
    }
}
