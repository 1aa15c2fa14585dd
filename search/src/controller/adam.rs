//! Adam over plain `f32` buffers, so its moments can be checkpointed bit-exactly (candle's
//! optimiser keeps them private). The moment update and bias corrections are the trainer's
//! (`evaluator::train::optim`), accumulated here in f64.

use evaluator::train::optim::{adam_bias_corrections, adam_moments};
use serde::{Deserialize, Serialize};

use super::floats::Floats;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken so far.
    t: u64,
    m: Vec<Floats>,
    v: Vec<Floats>,
}

impl Adam {
    /// An optimiser for parameters of the given sizes.
    pub fn new(lr: f64, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|&n| Floats(vec![0.0; n])).collect();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, m: zeros(), v: zeros() }
    }

    /// One step: `params[i] -= lr * m_hat / (sqrt(v_hat) + eps)` with `grads[i]`.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        self.t += 1;
        let (c1, c2) = adam_bias_corrections(self.beta1, self.beta2, self.t);
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let (m, v) = (&mut self.m[i].0, &mut self.v[i].0);
            for j in 0..p.len() {
                let (mj, vj) = adam_moments(self.beta1, self.beta2, m[j] as f64, v[j] as f64, g[j] as f64);
                (m[j], v[j]) = (mj as f32, vj as f32);
                let update = self.lr * (mj / c1) / ((vj / c2).sqrt() + self.eps);
                p[j] = (p[j] as f64 - update) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_the_gradient() {
        let mut adam = Adam::new(0.1, &[2]);
        let mut p = vec![vec![1.0f32, 1.0]];
        adam.step(&mut p, &[vec![3.0, -0.5]]);
        assert!((p[0][0] - 0.9).abs() < 1e-6 && (p[0][1] - 1.1).abs() < 1e-6, "{p:?}");
    }

    /// The update as it was written before it shared the trainer's moment code, bit for bit.
    #[test]
    fn steps_match_the_f64_formula_bit_for_bit() {
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 0.05f64);
        let mut adam = Adam::new(lr, &[3]);
        let (mut p, mut q) = (vec![vec![0.5f32, -1.25, 2.0]], vec![0.5f32, -1.25, 2.0]);
        let (mut m, mut v) = (vec![0.0f32; 3], vec![0.0f32; 3]);
        for t in 1..=6 {
            let g: Vec<f32> = (0..3).map(|j| ((t * 7 + j * 3) % 5) as f32 - 2.1).collect();
            adam.step(&mut p, std::slice::from_ref(&g));
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for j in 0..3 {
                let gj = g[j] as f64;
                let mj = b1 * m[j] as f64 + (1.0 - b1) * gj;
                let vj = b2 * v[j] as f64 + (1.0 - b2) * gj * gj;
                (m[j], v[j]) = (mj as f32, vj as f32);
                q[j] = (q[j] as f64 - lr * (mj / c1) / ((vj / c2).sqrt() + eps)) as f32;
            }
            assert_eq!(
                p[0].iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                q.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
