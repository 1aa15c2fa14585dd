//! How fast the machine is right now, relative to when the table was built.
//!
//! On a shared machine the same network reads 10-20% faster or slower from one minute to the
//! next (other tenants, frequency), while the networks' times relative to each other hold.
//! A fixed reference network (MixNet-S at half the table's resolution: a gauge, cheap next to
//! parts of a few milliseconds) timed next to what is being measured gives the current speed;
//! its time when the table was begun (`Table::reference_ms`) is the nominal speed, and every
//! table number is a time at nominal speed. Raw times are always kept beside the adjusted ones.

use std::time::Instant;

use candle_core::{Device, Result, Tensor};

use super::measure::{self, MeasureConfig, Measurement};
use crate::model::{EvalNet, MixNet};

/// The reference network, frozen for inference as everything measured is, and its input.
pub struct SpeedReference {
    net: EvalNet,
    x: Tensor,
}

/// A whole-network time next to the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relative {
    /// The network's own timed forwards.
    pub raw: Measurement,
    /// 25th percentile of `raw_i * nominal / reference_i` over adjacent (network, reference) pairs.
    pub adjusted_ms: f64,
    /// The reference's median time during the measurement.
    pub reference_ms: f64,
}

impl SpeedReference {
    pub fn new(cfg: &MeasureConfig) -> Result<Self> {
        let net = MixNet::new(&space::presets::mixnet_s(), 0, &Device::Cpu)?.eval_net()?;
        let gauge = MeasureConfig { resolution: Self::resolution(cfg), ..*cfg };
        Ok(Self { net, x: measure::input(&gauge)? })
    }

    /// The reference's input resolution for tables measured as `cfg`.
    pub fn resolution(cfg: &MeasureConfig) -> usize {
        (cfg.resolution / 2).max(32)
    }

    /// One timed forward of the reference, in milliseconds (call on the pool, see `on_pool`).
    pub fn forward_ms(&self) -> Result<f64> {
        let t = Instant::now();
        self.net.forward(&self.x)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }

    /// The reference's 25th percentile over `cfg`'s repeats: the nominal speed of a new table.
    pub fn nominal_ms(&self, cfg: &MeasureConfig) -> Result<f64> {
        Ok(measure::time(cfg, || self.forward_ms().map(drop))?.q25_ms)
    }

    /// Measures `net` (frozen for inference, see [`super::measure::measure`]) on `x` in adjacent pairs
    /// with the reference (`cfg`'s warm-up, repeats and time bound, both networks' forwards
    /// counted) and adjusts each to `nominal_ms`.
    pub fn relative(&self, net: &MixNet, x: &Tensor, cfg: &MeasureConfig, nominal_ms: f64) -> Result<Relative> {
        let net = net.eval_net()?;
        let pairs = measure::repeat(cfg, || {
            let t = Instant::now();
            net.forward(x)?;
            Ok((t.elapsed().as_secs_f64() * 1e3, self.forward_ms()?))
        })?;
        let mut reference: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        Ok(Relative {
            raw: measure::summarise(pairs.iter().map(|p| p.0).collect()),
            adjusted_ms: measure::summarise(pairs.iter().map(|&(ms, r)| ms * nominal_ms / r).collect()).q25_ms,
            reference_ms: measure::median(&mut reference),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference timed against a copy of itself: whatever the machine's speed does during
    /// the measurement, each pair's ratio is about 1, so the adjusted time is about the nominal.
    /// The gauge runs at 64 px (tables at 128): at 32 px a frozen MixNet-S takes ~3 ms, short
    /// enough that the other tests running beside this one moved single pairs by 30%.
    #[test]
    fn a_copy_of_the_reference_reads_the_nominal_time() -> Result<()> {
        let cfg = MeasureConfig { resolution: 128, batch: 1, warmup: 1, repeats: 9, max_seconds: 60.0 };
        let reference = SpeedReference::new(&cfg)?;
        let copy = MixNet::new(&space::presets::mixnet_s(), 0, &Device::Cpu)?;
        let gauge = MeasureConfig { resolution: SpeedReference::resolution(&cfg), ..cfg };
        let rel = reference.relative(&copy, &measure::input(&gauge)?, &cfg, 100.0)?;
        assert_eq!(rel.raw.samples, 9);
        assert!(rel.reference_ms > 0.0 && rel.raw.q25_ms > 0.0, "{rel:?}");
        assert!((75.0..125.0).contains(&rel.adjusted_ms), "{rel:?}");
        Ok(())
    }
}
