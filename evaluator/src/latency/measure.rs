//! Measured latency: build the network once, run a few warm-up forwards, then time repeats until
//! `repeats` are done or the time bound is reached, and summarise with the median and spread.
//!
//! The time bound covers warm-up and repeats together, so one measurement never takes much more
//! than `max_seconds` plus one forward; at least one timed sample is always taken.

use std::time::{Duration, Instant};

use candle_core::{Device, Result, Tensor};
use kernels::stats::{median, nearest_rank};
use serde::{Deserialize, Serialize};
use space::Arch;

use crate::model::MixNet;

/// How to measure: the input shape and how long to try.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasureConfig {
    /// Input height and width.
    pub resolution: usize,
    pub batch: usize,
    /// Untimed forwards before timing (caches, allocator, lazy initialisation).
    pub warmup: usize,
    /// Timed forwards wanted.
    pub repeats: usize,
    /// Wall-clock bound for warm-up plus repeats.
    pub max_seconds: f64,
}

impl Default for MeasureConfig {
    /// The target setting (224x224, batch 1) with a bound that keeps a MixNet-L under 10 s.
    fn default() -> Self {
        Self { resolution: 224, batch: 1, warmup: 2, repeats: 15, max_seconds: 10.0 }
    }
}

/// Summary of the timed forwards, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub median_ms: f64,
    pub min_ms: f64,
    /// The 25th percentile: what the table and its validation compare, because on a shared
    /// machine noise only ever adds time, and a low quantile keeps less of it than the median
    /// while not resting on one lucky sample as the minimum does.
    pub q25_ms: f64,
    pub p90_ms: f64,
    /// Timed forwards actually taken (fewer than asked when the time bound hit).
    pub samples: usize,
    /// Threads of this process's pool (see [`super::threads`]).
    pub threads: usize,
}

/// Measures `arch` (weights from a fixed seed) on a random input of the configured shape, on
/// the CPU with this process's thread pool, frozen for inference as it would be deployed
/// ([`crate::model::EvalNet`]: batch norm folded, fused kernels; the folding is not timed, as
/// ONNX Runtime's session set-up is not).
pub fn measure(arch: &Arch, cfg: &MeasureConfig) -> Result<Measurement> {
    let net = MixNet::new(arch, 0, &Device::Cpu)?.eval_net()?;
    let x = input(cfg)?;
    time(cfg, || net.forward(&x).map(drop))
}

/// A standard-normal input `[batch, 3, resolution, resolution]`, the same every run.
pub(crate) fn input(cfg: &MeasureConfig) -> Result<Tensor> {
    crate::train_bench::normal_images((cfg.batch, 3, cfg.resolution, cfg.resolution), 0)
}

/// Times `run` by the rules of the module doc.
pub(crate) fn time(cfg: &MeasureConfig, mut run: impl FnMut() -> Result<()> + Send) -> Result<Measurement> {
    let ms = repeat(cfg, || {
        let t = Instant::now();
        run()?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    })?;
    Ok(summarise(ms))
}

/// Runs `run` for `cfg`'s warm-up (results dropped) and then its repeats within the time bound,
/// on a thread of the compute pool (kernels called from outside it hand every parallel loop
/// over and wait: context switches that would land in the timings). Returns the timed results.
pub(crate) fn repeat<S: Send>(cfg: &MeasureConfig, mut run: impl FnMut() -> Result<S> + Send) -> Result<Vec<S>> {
    crate::on_pool(|| {
        let start = Instant::now();
        let bound = Duration::from_secs_f64(cfg.max_seconds.max(0.0));
        for _ in 0..cfg.warmup {
            if start.elapsed() >= bound / 2 {
                break;
            }
            run()?;
        }
        let mut out = Vec::with_capacity(cfg.repeats.max(1));
        while out.is_empty() || (out.len() < cfg.repeats && start.elapsed() < bound) {
            out.push(run()?);
        }
        Ok(out)
    })
}

pub(crate) fn summarise(mut ms: Vec<f64>) -> Measurement {
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median_ms = median(&ms);
    let (q25_ms, p90_ms) = (nearest_rank(&ms, 0.25), nearest_rank(&ms, 0.9));
    Measurement { median_ms, min_ms: ms[0], q25_ms, p90_ms, samples: n, threads: super::threads() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::arch::two_block_net;

    #[test]
    fn stats_are_ordered_and_count_the_repeats() -> Result<()> {
        let cfg = MeasureConfig { resolution: 32, batch: 1, warmup: 1, repeats: 5, max_seconds: 60.0 };
        let m = measure(&two_block_net(), &cfg)?;
        assert_eq!(m.samples, 5);
        assert!(0.0 < m.min_ms && m.min_ms <= m.q25_ms && m.q25_ms <= m.median_ms && m.median_ms <= m.p90_ms, "{m:?}");
        assert!(m.threads >= 1);
        Ok(())
    }

    #[test]
    fn the_time_bound_stops_repeats_after_one_sample() -> Result<()> {
        let cfg = MeasureConfig { resolution: 32, batch: 1, warmup: 3, repeats: 1000, max_seconds: 0.0 };
        let mut runs = 0;
        let m = time(&cfg, || {
            runs += 1;
            Ok(())
        })?;
        assert_eq!((m.samples, runs), (1, 1), "no warm-up and one sample once the bound has passed");
        Ok(())
    }

    #[test]
    fn summary_of_known_samples() {
        let m = summarise((1..=10).rev().map(f64::from).collect());
        assert_eq!((m.min_ms, m.q25_ms, m.median_ms, m.p90_ms, m.samples), (1.0, 3.0, 5.5, 9.0, 10));
    }
}
