//! The rank report of one scored sample: every statistic of [`stats`](super::stats) with its
//! bootstrap 95% interval, computed from the rows alone, so anyone can recompute it from them.

use serde::{Deserialize, Serialize};

use super::stats::{binned_tau, bootstrap_interval, gather, kendall_tau_b, nan_as_null, spearman, top_recall};

/// Bootstrap resamples behind each interval.
pub const RESAMPLES: usize = 1000;
/// The truth's top share that top-k recall looks for (top 10%).
pub const TOP_FRACTION: f64 = 0.1;
/// Cost bins for the within-bin tau (quartiles).
pub const COST_BINS: usize = 4;

/// A statistic of the (scores, truth, costs) columns.
type Statistic = dyn Fn(&[f64], &[f64], &[f64]) -> f64;

/// A statistic and its percentile bootstrap 95% interval; NaN (null in JSON) where undefined.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    #[serde(with = "nan_as_null")]
    pub value: f64,
    #[serde(with = "nan_as_null")]
    pub low: f64,
    #[serde(with = "nan_as_null")]
    pub high: f64,
}

/// How well `scores` rank items the way `truth` does, overall and within cost quartiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankReport {
    pub n: usize,
    pub kendall_tau: Estimate,
    pub spearman: Estimate,
    pub top10_recall: Estimate,
    pub within_quartile_tau: Estimate,
    /// The bootstrap's seed and resample count, to reproduce the intervals.
    pub seed: u64,
    pub resamples: usize,
}

/// The report for aligned columns (item i is `scores[i]`, `truth[i]`, `costs[i]`, e.g. FLOPs).
/// Every interval uses the same `seed`, hence the same resampled item sets.
pub fn rank_report(scores: &[f64], truth: &[f64], costs: &[f64], seed: u64) -> RankReport {
    assert!(scores.len() == truth.len() && truth.len() == costs.len(), "rank_report: columns of different lengths");
    let estimate = |statistic: &Statistic| {
        let value = statistic(scores, truth, costs);
        let interval = bootstrap_interval(scores.len(), RESAMPLES, seed, |idx| {
            statistic(&gather(scores, idx), &gather(truth, idx), &gather(costs, idx))
        });
        Estimate { value, low: interval.low, high: interval.high }
    };
    RankReport {
        n: scores.len(),
        kendall_tau: estimate(&|s, t, _| kendall_tau_b(s, t)),
        spearman: estimate(&|s, t, _| spearman(s, t)),
        top10_recall: estimate(&|s, t, _| top_recall(s, t, TOP_FRACTION)),
        within_quartile_tau: estimate(&|s, t, c| binned_tau(s, t, c, COST_BINS)),
        seed,
        resamples: RESAMPLES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_score_reports_ones_and_round_trips_through_json() {
        let truth: Vec<f64> = (0..40).map(f64::from).collect();
        let costs: Vec<f64> = truth.iter().map(|t| (t * 7.0) % 40.0).collect();
        let report = rank_report(&truth, &truth, &costs, 5);
        assert_eq!(report.n, 40);
        for e in [report.kendall_tau, report.spearman, report.top10_recall, report.within_quartile_tau] {
            // Tied shares of a resample's cut (thirds, say) may sum to 1 less an ulp.
            assert!([e.value, e.low, e.high].iter().all(|v| (v - 1.0).abs() < 1e-12), "{report:?}");
        }
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<RankReport>(&json).unwrap(), report);
    }

    #[test]
    fn values_are_the_plain_statistics_and_undefined_ones_are_null() {
        let truth = [1.0, 2.0, 3.0, 4.0, 5.0];
        let scores = [5.0, 6.0, 7.0, 8.0, 7.0];
        let report = rank_report(&scores, &truth, &[1.0; 5], 9);
        assert_eq!(report.kendall_tau.value, kendall_tau_b(&scores, &truth));
        assert_eq!(report.spearman.value, spearman(&scores, &truth));
        // One cost bin holds all five items at equal cost: the within-quartile tau is overall tau.
        assert_eq!(report.within_quartile_tau.value, report.kendall_tau.value);
        let constant = rank_report(&[3.0; 5], &truth, &truth, 9);
        assert!(constant.kendall_tau.value.is_nan() && constant.kendall_tau.low.is_nan());
        let json = serde_json::to_value(&constant).unwrap();
        assert_eq!(json["kendall_tau"]["value"], serde_json::Value::Null);
        assert_eq!(json["top10_recall"]["value"], 0.2);
    }
}
