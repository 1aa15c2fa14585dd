//! How good is the predictor: sample architectures from a space, measure and predict each, and
//! score the predictions against a MACs-proportional baseline (`ms = k * MACs`, `k` fitted by
//! least squares through the origin on the same timings, so the baseline is given its best case).
//!
//! Two predictions, each held against the timing it promises. *Now* (the nominal prediction
//! scaled by the speed reference timed right beside the network) against the raw median of the
//! network's timed forwards: what a user's stopwatch reads here, drift and all; the headline.
//! *Nominal* (the table's time at the machine's unloaded speed) against the network's raw
//! minimum, the nearest a stopwatch gets to the unloaded machine. Beside them, the table's own
//! quantity: the 25th percentile adjusted to the nominal speed by the reference pairs
//! (`speed.rs`), where drift cancels: the figure for comparing networks with each other, as a
//! search does.

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
    /// Raw 25th percentile, median and minimum of the same forwards.
    pub raw_ms: f64,
    pub raw_median_ms: f64,
    pub raw_min_ms: f64,
    /// The speed reference's median time next to them (its nominal time is the table's).
    pub reference_ms: f64,
    /// The nominal prediction.
    pub predicted_ms: f64,
    /// The nominal prediction at the speed the reference read beside the network.
    pub now_ms: f64,
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
    /// The headline: "now" predictions against the raw medians (what a user measures).
    pub now_vs_raw_median: Accuracy,
    /// The MACs baseline against the raw medians, its slope fitted on them.
    pub macs_baseline_vs_raw_median: Accuracy,
    /// Nominal predictions against the raw minimums.
    pub nominal_vs_raw_min: Accuracy,
    /// The MACs baseline against the raw minimums, its slope fitted on them.
    pub macs_baseline_vs_raw_min: Accuracy,
    /// Nominal predictions against the raw medians (no speed correction at all).
    pub table_vs_raw_median: Accuracy,
    /// The table against the speed-adjusted 25th percentiles (what it predicts).
    pub table: Accuracy,
    pub macs_baseline: Accuracy,
    /// The table against the raw 25th percentiles: what the machine's drift in speed adds.
    pub table_vs_raw: Accuracy,
    /// The speed reference's time at the table's nominal speed, after this run's readings.
    pub nominal_reference_ms: f64,
    /// Reference readings behind the nominal.
    pub nominal_readings: u64,
    /// Fitted milliseconds per million MACs of the baseline (on the adjusted times).
    pub ms_per_mmac: f64,
    /// The same slope fitted on the raw medians and on the raw minimums.
    pub ms_per_mmac_raw_median: f64,
    pub ms_per_mmac_raw_min: f64,
    /// `/proc/loadavg` before and after the timings (empty where there is none).
    pub load_before: String,
    pub load_after: String,
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
    let load_before = loadavg();
    let (mut samples, mut nominals) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, arch) in sample_archs(space, n, seed)?.iter().enumerate() {
        progress(i, n);
        // Predict first: parts it measures must not run while the network is being timed.
        predictor.predict(arch)?;
        let m = predictor.measure(arch)?;
        // Again, at the nominal the measurement's reference readings may have moved.
        let predicted_ms = predictor.predict(arch)?.ms;
        let nominal_ms = predictor.table().reference_ms.expect("set by measuring");
        let cost = space::cost(arch, cfg.resolution).total;
        nominals.push(nominal_ms);
        samples.push(Sample {
            macs: cost.macs,
            params: cost.params,
            measured_ms: m.adjusted_ms,
            raw_ms: m.raw.q25_ms,
            raw_median_ms: m.raw.median_ms,
            raw_min_ms: m.raw.min_ms,
            reference_ms: m.reference_ms,
            predicted_ms,
            now_ms: predicted_ms * m.reference_ms / nominal_ms,
            macs_baseline_ms: 0.0,
        });
    }
    let load_after = loadavg();
    // The nominal may have moved while measuring: every table time at the final one.
    let table = predictor.table();
    for (s, at) in samples.iter_mut().zip(&nominals) {
        (s.predicted_ms, s.measured_ms) = (table.at_nominal(s.predicted_ms, *at), table.at_nominal(s.measured_ms, *at));
    }
    let ms_per_mmac = macs_slope(&samples, |s| s.measured_ms);
    for s in &mut samples {
        s.macs_baseline_ms = ms_per_mmac * s.macs as f64 / 1e6;
    }
    let (k_median, k_min) = (macs_slope(&samples, |s| s.raw_median_ms), macs_slope(&samples, |s| s.raw_min_ms));
    let macs = |k: f64, s: &Sample| k * s.macs as f64 / 1e6;
    Ok(ValidationReport {
        seed,
        resolution: cfg.resolution,
        threads: super::threads(),
        now_vs_raw_median: accuracy(samples.iter().map(|s| (s.now_ms, s.raw_median_ms))),
        macs_baseline_vs_raw_median: accuracy(samples.iter().map(|s| (macs(k_median, s), s.raw_median_ms))),
        nominal_vs_raw_min: accuracy(samples.iter().map(|s| (s.predicted_ms, s.raw_min_ms))),
        macs_baseline_vs_raw_min: accuracy(samples.iter().map(|s| (macs(k_min, s), s.raw_min_ms))),
        table_vs_raw_median: accuracy(samples.iter().map(|s| (s.predicted_ms, s.raw_median_ms))),
        table: accuracy(samples.iter().map(|s| (s.predicted_ms, s.measured_ms))),
        macs_baseline: accuracy(samples.iter().map(|s| (s.macs_baseline_ms, s.measured_ms))),
        table_vs_raw: accuracy(samples.iter().map(|s| (s.predicted_ms, s.raw_ms))),
        nominal_reference_ms: table.reference_ms.unwrap_or(f64::NAN),
        nominal_readings: table.reference_readings.count,
        ms_per_mmac,
        ms_per_mmac_raw_median: k_median,
        ms_per_mmac_raw_min: k_min,
        load_before,
        load_after,
        samples,
    })
}

/// The load averages line of `/proc/loadavg`, trimmed; empty where there is none.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_default()
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
            raw_min_ms: measured_ms,
            reference_ms: 1.0,
            predicted_ms: 0.0,
            now_ms: 0.0,
            macs_baseline_ms: 0.0,
        };
        let k = macs_slope(&[s(1_000_000, 2.0), s(2_000_000, 4.0), s(3_000_000, 6.0)], |s| s.measured_ms);
        assert!((k - 2.0).abs() < 1e-12);
    }
}
