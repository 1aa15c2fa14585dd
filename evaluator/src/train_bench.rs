//! The training-step benchmark behind `nas bench train`, shaped like the PyTorch yardstick
//! (`shared/bench/torch_reference.py`): forward, cross-entropy, backward and an SGD-momentum
//! step on a fixed random batch; warm-up steps, then the median of timed repeats.

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;
use space::Arch;

use crate::model::MixNet;
use crate::train::loss::cross_entropy;
use crate::train::optim::{Optimizer, OptimizerConfig, SgdConfig};
use kernels::stats::median;

#[derive(Clone, Copy, Debug)]
pub struct TrainBenchConfig {
    pub batch: usize,
    pub resolution: usize,
    pub classes: usize,
    pub warmup: usize,
    pub repeats: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    pub step_ms: f64,
    pub images_per_s: f64,
    /// Every timed step, for spread.
    pub steps_ms: Vec<f64>,
}

/// Times training steps of `arch` as given (the caller applies any proxy adaptation).
pub fn train_step(arch: &Arch, cfg: &TrainBenchConfig) -> Result<TrainBench> {
    let mut arch = arch.clone();
    arch.classes = cfg.classes;
    let net = MixNet::new(&arch, 0, &Device::Cpu)?;
    let sgd = SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 1e-5 };
    let mut opt = Optimizer::new(net.trainable(), OptimizerConfig::Sgd(sgd))?;
    let x = normal_images((cfg.batch, 3, cfg.resolution, cfg.resolution), 0)?;
    let labels: Vec<u32> = (0..cfg.batch as u32).map(|i| i % cfg.classes as u32).collect();
    let y = Tensor::new(labels, &Device::Cpu)?;
    let mut rng = StdRng::seed_from_u64(0);
    let mut step = || -> Result<()> {
        crate::on_pool(|| {
            let loss = cross_entropy(&net.forward_train(&x, &mut rng)?, &y, 0.0)?;
            opt.step(&loss.backward()?, 0.05)
        })
    };
    for _ in 0..cfg.warmup {
        step()?;
    }
    let mut steps_ms = Vec::with_capacity(cfg.repeats);
    for _ in 0..cfg.repeats {
        let t = Instant::now();
        step()?;
        steps_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let step_ms = median(&steps_ms);
    Ok(TrainBench { step_ms, images_per_s: cfg.batch as f64 / (step_ms / 1e3), steps_ms })
}

/// Standard-normal images `[n, c, h, w]` from `seed`: the same input on every run (candle's
/// `randn` draws from an unseeded generator).
pub(crate) fn normal_images(shape: (usize, usize, usize, usize), seed: u64) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..shape.0 * shape.1 * shape.2 * shape.3).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Peak resident memory of this process in MiB (`VmHWM`), where the OS reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_images_repeat_per_seed_and_are_standard() -> Result<()> {
        let a = normal_images((2, 3, 16, 16), 7)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, normal_images((2, 3, 16, 16), 7)?.flatten_all()?.to_vec1::<f32>()?);
        assert_ne!(a, normal_images((2, 3, 16, 16), 8)?.flatten_all()?.to_vec1::<f32>()?);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "mean {mean}, variance {var}");
        Ok(())
    }
}
