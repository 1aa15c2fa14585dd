//! How good is the predictor: sample architectures from a space, measure and predict each, and
//! score the predictions against a MACs-proportional baseline (`ms = k * MACs`, `k` fitted by
//! least squares through the origin on the same samples, so the baseline is given its best case).
//!
//! Two measured times, for two uses. The raw median of the network's timed forwards is what a
//! user timing it on this machine gets, noise and the machine's drift in speed included: it is
//! the headline, and the figure to hold a prediction against one's own timing. The 25th
//! percentile adjusted to the table's nominal machine speed by a reference network timed right
//! after it (`speed.rs`) is the table's own quantity: drift shifts all networks alike, so this
//! is the figure for comparing networks with each other, as a search does.

use serde::Serialize;
use space::SearchSpace;

use super::build::sample_archs;
use super::predict::TablePredictor;
use super::LatencyError;

/// One validated architecture.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub macs: u64,
    pub params: u64,
    /// Speed-adjusted 25th percentile of the timed forwards: what the table predicts.
    pub measured_ms: f64,
    /// Raw 25th percentile and median of the same forwards.
    pub raw_ms: f64,
    pub raw_median_ms: f64,
    /// The speed reference's median time next to them (its nominal time is the table's).
    pub reference_ms: f64,
    pub predicted_ms: f64,
    pub macs_baseline_ms: f64,
}

/// Agreement of one predictor with measurement.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Accuracy {
    /// Share of samples within +-10% of measured.
    pub within_10: f64,
    pub within_5: f64,
    /// Mean absolute percentage error, in percent.
    pub mape: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValidationReport {
    pub seed: u64,
    pub resolution: usize,
    pub threads: usize,
    /// The headline: the table against the raw medians (what a user measures).
    pub table_vs_raw_median: Accuracy,
    /// The MACs baseline against the raw medians, its slope fitted on them.
    pub macs_baseline_vs_raw_median: Accuracy,
    /// The table against the speed-adjusted 25th percentiles (what it predicts).
    pub table: Accuracy,
    pub macs_baseline: Accuracy,
    /// The table against the raw 25th percentiles: what the machine's drift in speed adds.
    pub table_vs_raw: Accuracy,
    /// The speed reference's time when the table was begun.
    pub nominal_reference_ms: f64,
    /// Fitted milliseconds per million MACs of the baseline (on the adjusted times).
    pub ms_per_mmac: f64,
    /// The same slope fitted on the raw medians.
    pub ms_per_mmac_raw_median: f64,
    pub samples: Vec<Sample>,
}

/// Validates `predictor` on `n` samples of `space` drawn with `seed`; `progress(done, total)`.
pub fn validate(
    predictor: &TablePredictor,
    space: &SearchSpace,
    n: usize,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<ValidationReport, LatencyError> {
    let cfg = *predictor.network_config();
    let mut samples = Vec::with_capacity(n);
    for (i, arch) in sample_archs(space, n, seed)?.iter().enumerate() {
        progress(i, n);
        // Predict first: parts it measures must not run while the network is being timed.
        let predicted_ms = predictor.predict(arch)?.ms;
        let m = predictor.measure(arch)?;
        let cost = space::cost(arch, cfg.resolution).total;
        samples.push(Sample {
            macs: cost.macs,
            params: cost.params,
            measured_ms: m.adjusted_ms,
            raw_ms: m.raw.q25_ms,
            raw_median_ms: m.raw.median_ms,
            reference_ms: m.reference_ms,
            predicted_ms,
            macs_baseline_ms: 0.0,
        });
    }
    let ms_per_mmac = macs_slope(&samples, |s| s.measured_ms);
    for s in &mut samples {
        s.macs_baseline_ms = ms_per_mmac * s.macs as f64 / 1e6;
    }
    let k_raw = macs_slope(&samples, |s| s.raw_median_ms);
    Ok(ValidationReport {
        seed,
        resolution: cfg.resolution,
        threads: super::threads(),
        table_vs_raw_median: accuracy(samples.iter().map(|s| (s.predicted_ms, s.raw_median_ms))),
        macs_baseline_vs_raw_median: accuracy(samples.iter().map(|s| (k_raw * s.macs as f64 / 1e6, s.raw_median_ms))),
        table: accuracy(samples.iter().map(|s| (s.predicted_ms, s.measured_ms))),
        macs_baseline: accuracy(samples.iter().map(|s| (s.macs_baseline_ms, s.measured_ms))),
        table_vs_raw: accuracy(samples.iter().map(|s| (s.predicted_ms, s.raw_ms))),
        nominal_reference_ms: predictor.table().reference_ms.unwrap_or(f64::NAN),
        ms_per_mmac,
        ms_per_mmac_raw_median: k_raw,
        samples,
    })
}

/// Least squares `time(sample) = k * MMACs` through the origin.
fn macs_slope(samples: &[Sample], time: impl Fn(&Sample) -> f64) -> f64 {
    let (xy, xx) = samples.iter().fold((0.0, 0.0), |(xy, xx), s| {
        let x = s.macs as f64 / 1e6;
        (xy + x * time(s), xx + x * x)
    });
    if xx > 0.0 {
        xy / xx
    } else {
        0.0
    }
}

/// Scores `(predicted, measured)` pairs.
pub fn accuracy(pairs: impl Iterator<Item = (f64, f64)>) -> Accuracy {
    let errors: Vec<f64> = pairs.map(|(p, m)| ((p - m) / m).abs()).collect();
    if errors.is_empty() {
        return Accuracy::default();
    }
    let n = errors.len() as f64;
    let share = |bound: f64| errors.iter().filter(|&&e| e <= bound).count() as f64 / n;
    Accuracy { within_10: share(0.10), within_5: share(0.05), mape: 100.0 * errors.iter().sum::<f64>() / n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_shares_and_mean_error() {
        let a = accuracy([(104.0, 100.0), (92.0, 100.0), (130.0, 100.0), (100.0, 100.0)].into_iter());
        assert_eq!((a.within_10, a.within_5), (0.75, 0.5));
        assert!((a.mape - 10.5).abs() < 1e-9, "{a:?}");
    }

    #[test]
    fn the_macs_baseline_is_a_least_squares_slope() {
        let s = |macs: u64, measured_ms| Sample {
            macs,
            params: 0,
            measured_ms,
            raw_ms: measured_ms,
            raw_median_ms: measured_ms,
            reference_ms: 1.0,
            predicted_ms: 0.0,
            macs_baseline_ms: 0.0,
        };
        let k = macs_slope(&[s(1_000_000, 2.0), s(2_000_000, 4.0), s(3_000_000, 6.0)], |s| s.measured_ms);
        assert!((k - 2.0).abs() < 1e-12);
    }
}
