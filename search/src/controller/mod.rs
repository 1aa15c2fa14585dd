//! The RL controller: an LSTM [`Policy`] over the search space's decisions, trained on rewards
//! with REINFORCE (ENAS: moving-average baseline, entropy bonus, Adam) or PPO (MnasNet: the
//! clipped surrogate objective, a few epochs per batch). Its whole state (weights, Adam
//! moments, baseline, step count) checkpoints bit-exactly, so a resumed search samples exactly
//! what the uninterrupted one would have.

mod adam;
mod floats;
mod policy;

pub use adam::Adam;
pub use floats::Floats;
pub use policy::{Policy, Rollout};

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use evaluator::rng::SplitMix64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    Reinforce,
    Ppo,
}

/// Controller hyper-parameters (defaults: ENAS's, with the learning rate tuned on the
/// surrogate for searches of a few hundred trials).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControllerConfig {
    pub hidden: usize,
    pub init_range: f64,
    pub learning_rate: f64,
    pub temperature: f64,
    pub tanh_constant: f64,
    pub entropy_weight: f64,
    /// Baseline decay: `b <- b - (1 - decay) (b - R)`.
    pub baseline_decay: f64,
    pub ppo_clip: f64,
    pub ppo_epochs: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            hidden: 64,
            init_range: 0.1,
            learning_rate: 5e-3,
            temperature: 5.0,
            tanh_constant: 2.5,
            entropy_weight: 1e-4,
            baseline_decay: 0.99,
            ppo_clip: 0.2,
            ppo_epochs: 4,
        }
    }
}

/// Everything but the configuration, as checkpointed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControllerState {
    pub update: Update,
    pub num_options: Vec<usize>,
    pub params: Vec<Floats>,
    pub adam: Adam,
    /// `None` until the first batch, which initialises it to its mean reward.
    pub baseline: Option<f64>,
    pub updates: u64,
}

pub struct Controller {
    config: ControllerConfig,
    update: Update,
    num_options: Vec<usize>,
    policy: Policy,
    adam: Adam,
    baseline: Option<f64>,
    updates: u64,
}

impl Controller {
    pub fn new(config: &ControllerConfig, update: Update, num_options: &[usize], rng: &mut SplitMix64) -> Result<Self> {
        let policy = Policy::new(config, num_options, rng)?;
        let sizes: Vec<usize> = policy.vars().iter().map(|v| v.elem_count()).collect();
        let adam = Adam::new(config.learning_rate, &sizes);
        let num_options = num_options.to_vec();
        Ok(Controller { config: config.clone(), update, num_options, policy, adam, baseline: None, updates: 0 })
    }

    pub fn sample(&self, n: usize, rng: &mut SplitMix64) -> Result<Vec<Vec<usize>>> {
        self.policy.sample(n, rng)
    }

    pub fn baseline(&self) -> Option<f64> {
        self.baseline
    }

    /// Learns from one batch of (candidate, reward) pairs, in trial order.
    pub fn learn(&mut self, batch: &[(Vec<usize>, f64)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let rewards: Vec<f64> = batch.iter().map(|b| b.1).collect();
        let mut b = self.baseline.unwrap_or(rewards.iter().sum::<f64>() / rewards.len() as f64);
        // Advantages use the baseline from before this batch, so no sample judges itself.
        let advantage: Vec<f32> = rewards.iter().map(|r| (r - b) as f32).collect();
        for r in &rewards {
            b -= (1.0 - self.config.baseline_decay) * (b - r);
        }
        self.baseline = Some(b);
        let actions: Vec<Vec<usize>> = batch.iter().map(|b| b.0.clone()).collect();
        let advantage = Tensor::new(advantage, &candle_core::Device::Cpu)?;
        match self.update {
            Update::Reinforce => self.reinforce_step(&actions, &advantage)?,
            Update::Ppo => self.ppo_steps(&actions, &advantage)?,
        }
        self.updates += 1;
        Ok(())
    }

    /// loss = mean over candidates of -log pi(a) (R - b), minus the entropy bonus.
    fn reinforce_step(&mut self, actions: &[Vec<usize>], advantage: &Tensor) -> Result<()> {
        let r = self.policy.score(actions)?;
        let loss = (r.log_prob * advantage)?.mean_all()?.neg()?;
        self.descend(&(loss - (r.entropy.mean_all()? * self.config.entropy_weight)?)?)
    }

    /// PPO-clip: `ppo_epochs` steps on -min(ratio A, clip(ratio, 1-eps, 1+eps) A).
    fn ppo_steps(&mut self, actions: &[Vec<usize>], advantage: &Tensor) -> Result<()> {
        let old = self.policy.score(actions)?.log_prob.detach();
        let eps = self.config.ppo_clip;
        for _ in 0..self.config.ppo_epochs {
            let r = self.policy.score(actions)?;
            let ratio = (r.log_prob - &old)?.exp()?;
            let unclipped = (&ratio * advantage)?;
            let clipped = (ratio.clamp(1.0 - eps, 1.0 + eps)? * advantage)?;
            let loss = unclipped.minimum(&clipped)?.mean_all()?.neg()?;
            self.descend(&(loss - (r.entropy.mean_all()? * self.config.entropy_weight)?)?)?;
        }
        Ok(())
    }

    fn descend(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        let grads: Vec<Vec<f32>> = self
            .policy
            .vars()
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => g.flatten_all()?.to_vec1::<f32>(),
                None => Ok(vec![0.0; v.elem_count()]),
            })
            .collect::<Result<_>>()?;
        let mut params = self.policy.values()?;
        self.adam.step(&mut params, &grads);
        self.policy.set_values(&params)
    }

    pub fn state(&self) -> Result<ControllerState> {
        Ok(ControllerState {
            update: self.update,
            num_options: self.num_options.clone(),
            params: self.policy.values()?.into_iter().map(Floats).collect(),
            adam: self.adam.clone(),
            baseline: self.baseline,
            updates: self.updates,
        })
    }

    pub fn restore(&mut self, state: ControllerState) -> Result<()> {
        if state.num_options != self.num_options || state.update != self.update {
            candle_core::bail!("controller checkpoint is for another search space or update rule");
        }
        let params: Vec<Vec<f32>> = state.params.into_iter().map(|f| f.0).collect();
        self.policy.set_values(&params)?;
        (self.adam, self.baseline, self.updates) = (state.adam, state.baseline, state.updates);
        Ok(())
    }
}
