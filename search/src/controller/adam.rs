//! Adam over plain `f32` buffers, so its moments can be checkpointed bit-exactly (candle's
//! optimiser keeps them private).

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
        let c1 = 1.0 - self.beta1.powi(self.t as i32);
        let c2 = 1.0 - self.beta2.powi(self.t as i32);
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let (m, v) = (&mut self.m[i].0, &mut self.v[i].0);
            for j in 0..p.len() {
                let gj = g[j] as f64;
                let mj = self.beta1 * m[j] as f64 + (1.0 - self.beta1) * gj;
                let vj = self.beta2 * v[j] as f64 + (1.0 - self.beta2) * gj * gj;
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
}
