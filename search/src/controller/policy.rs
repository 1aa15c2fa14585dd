//! The LSTM policy (ENAS / MnasNet style): one LSTM step per decision; the input of step d is
//! the embedding of the option chosen at step d-1 (a learned start vector at step 0); a
//! softmax head per decision reads the hidden state. Logits are squashed to
//! `tanh_constant * tanh(logits / temperature)` so no option's probability collapses early.

use candle_core::{DType, Device, Result, Tensor, Var, D};

use super::ControllerConfig;
use evaluator::rng::SplitMix64;

pub struct Policy {
    hidden: usize,
    num_options: Vec<usize>,
    temperature: f64,
    tanh_constant: f64,
    /// start, w_x, w_h, bias, then per decision d: head weight, head bias, and (except for
    /// the last decision) the embedding of its options.
    vars: Vec<Var>,
}

/// Log-probabilities and entropies summed over the decisions, one entry per candidate.
pub struct Rollout {
    pub actions: Vec<Vec<usize>>,
    pub log_prob: Tensor,
    pub entropy: Tensor,
}

const W_X: usize = 1;
const W_H: usize = 2;
const BIAS: usize = 3;

impl Policy {
    /// A policy with every parameter drawn from U(-init_range, init_range).
    pub fn new(config: &ControllerConfig, num_options: &[usize], rng: &mut SplitMix64) -> Result<Self> {
        let h = config.hidden;
        let mut shapes = vec![vec![1, h], vec![h, 4 * h], vec![h, 4 * h], vec![1, 4 * h]];
        for (d, &n) in num_options.iter().enumerate() {
            shapes.push(vec![h, n]);
            shapes.push(vec![1, n]);
            if d + 1 < num_options.len() {
                shapes.push(vec![n, h]);
            }
        }
        let r = config.init_range as f32;
        let values: Vec<Vec<f32>> = shapes
            .iter()
            .map(|s| (0..s.iter().product()).map(|_| (rng.uniform() as f32 * 2.0 - 1.0) * r).collect())
            .collect();
        let vars = shapes
            .iter()
            .zip(values)
            .map(|(s, v)| Var::from_tensor(&Tensor::from_vec(v, s.as_slice(), &Device::Cpu)?))
            .collect::<Result<_>>()?;
        Ok(Policy {
            hidden: h,
            num_options: num_options.to_vec(),
            temperature: config.temperature,
            tanh_constant: config.tanh_constant,
            vars,
        })
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The parameters as flat buffers, in `vars` order.
    pub fn values(&self) -> Result<Vec<Vec<f32>>> {
        self.vars.iter().map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>()).collect()
    }

    /// Overwrites every parameter; sizes must match `values()`.
    pub fn set_values(&self, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.vars.len() {
            candle_core::bail!("controller checkpoint has {} tensors, expected {}", values.len(), self.vars.len());
        }
        for (var, v) in self.vars.iter().zip(values) {
            var.set(&Tensor::from_slice(v, var.shape(), &Device::Cpu)?)?;
        }
        Ok(())
    }

    fn head(&self, d: usize) -> (&Var, &Var, Option<&Var>) {
        let mut i = 4;
        for k in 0..d {
            i += if k + 1 < self.num_options.len() { 3 } else { 2 };
        }
        (&self.vars[i], &self.vars[i + 1], self.vars.get(i + 2).filter(|_| d + 1 < self.num_options.len()))
    }

    fn lstm(&self, x: &Tensor, h: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        let gates = (x.matmul(&self.vars[W_X])? + h.matmul(&self.vars[W_H])?)?.broadcast_add(&self.vars[BIAS])?;
        let n = self.hidden;
        let sigmoid = |t: Tensor| t.affine(0.5, 0.0)?.tanh()?.affine(0.5, 0.5);
        let i = sigmoid(gates.narrow(1, 0, n)?)?;
        let f = sigmoid(gates.narrow(1, n, n)?)?;
        let g = gates.narrow(1, 2 * n, n)?.tanh()?;
        let o = sigmoid(gates.narrow(1, 3 * n, n)?)?;
        let c = ((f * c)? + (i * g)?)?;
        let h = (o * c.tanh()?)?;
        Ok((h, c))
    }

    /// Runs the policy over `n` candidates; `pick(d, probs)` chooses decision d's options given
    /// the row-wise probabilities (sampling, or replaying known actions).
    pub fn rollout(&self, n: usize, mut pick: impl FnMut(usize, &[Vec<f32>]) -> Vec<usize>) -> Result<Rollout> {
        let dev = Device::Cpu;
        let mut x = self.vars[0].broadcast_as((n, self.hidden))?.contiguous()?;
        let mut h = Tensor::zeros((n, self.hidden), DType::F32, &dev)?;
        let mut c = h.clone();
        let (mut log_prob, mut entropy) = (Tensor::zeros(n, DType::F32, &dev)?, Tensor::zeros(n, DType::F32, &dev)?);
        let mut actions = vec![Vec::with_capacity(self.num_options.len()); n];
        for d in 0..self.num_options.len() {
            (h, c) = self.lstm(&x, &h, &c)?;
            let (w, b, emb) = self.head(d);
            let logits = h.matmul(w)?.broadcast_add(b)?;
            let logits = logits.affine(1.0 / self.temperature, 0.0)?.tanh()?.affine(self.tanh_constant, 0.0)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let probs = logp.exp()?;
            let chosen = pick(d, &probs.to_vec2::<f32>()?);
            let idx = Tensor::from_vec(chosen.iter().map(|&a| a as u32).collect::<Vec<_>>(), n, &dev)?;
            log_prob = (log_prob + logp.gather(&idx.unsqueeze(1)?, 1)?.squeeze(1)?)?;
            entropy = (entropy - (probs * &logp)?.sum(1)?)?;
            if let Some(emb) = emb {
                x = emb.index_select(&idx, 0)?;
            }
            for (row, a) in actions.iter_mut().zip(chosen) {
                row.push(a);
            }
        }
        Ok(Rollout { actions, log_prob, entropy })
    }

    /// Samples `n` candidates.
    pub fn sample(&self, n: usize, rng: &mut SplitMix64) -> Result<Vec<Vec<usize>>> {
        Ok(self.rollout(n, |_, probs| probs.iter().map(|p| rng.categorical(p)).collect())?.actions)
    }

    /// Re-scores known candidates (teacher forcing), keeping the graph for a backward pass.
    pub fn score(&self, actions: &[Vec<usize>]) -> Result<Rollout> {
        self.rollout(actions.len(), |d, _| actions.iter().map(|a| a[d]).collect())
    }
}
