//! Rank agreement between a score vector and a truth vector (higher is better in both): Kendall
//! tau-b, Spearman rho, top-k recall, tau within cost bins, and bootstrap intervals of any of
//! them. A statistic that is undefined (too few items, a constant vector, a NaN input) is NaN.

use evaluator::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// Kendall tau-b, `(P - Q) / sqrt((n0 - n1)(n0 - n2))` with ties in either vector, in
/// O(n log n) (Knight 1966): sort by (x, y), count x ties and joint ties on the runs, then count
/// the discordant pairs as the inversions a merge sort of the y column removes.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_b: vectors of different lengths");
    if x.len() < 2 || x.iter().chain(y).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let mut pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let x_ties = tied_pairs(&pairs, |a, b| a.0 == b.0);
    let joint_ties = tied_pairs(&pairs, |a, b| a == b);
    let mut ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let discordant = sort_counting_inversions(&mut ys);
    let y_ties = tied_pairs(&ys, |a, b| a == b);
    let n = x.len() as u64;
    let all = n * (n - 1) / 2;
    let concordant_minus_discordant = (all + joint_ties) as f64 - (x_ties + y_ties + 2 * discordant) as f64;
    let denominator = ((all - x_ties) as f64 * (all - y_ties) as f64).sqrt();
    if denominator == 0.0 {
        return f64::NAN;
    }
    concordant_minus_discordant / denominator
}

/// Pairs within runs of adjacent equal items: the sum of t(t - 1)/2 over the runs.
fn tied_pairs<T>(sorted: &[T], equal: impl Fn(&T, &T) -> bool) -> u64 {
    let mut total = 0;
    let mut run = 1u64;
    for w in sorted.windows(2) {
        if equal(&w[0], &w[1]) {
            run += 1;
        } else {
            total += run * (run - 1) / 2;
            run = 1;
        }
    }
    total + run * (run - 1) / 2
}

/// Sorts ascending (stable merge sort) and returns the number of pairs i < j with v[i] > v[j].
fn sort_counting_inversions(values: &mut [f64]) -> u64 {
    if values.len() < 2 {
        return 0;
    }
    let mid = values.len() / 2;
    let mut inversions = sort_counting_inversions(&mut values[..mid]) + sort_counting_inversions(&mut values[mid..]);
    let (mut merged, mut i, mut j) = (Vec::with_capacity(values.len()), 0, mid);
    while i < mid && j < values.len() {
        if values[j] < values[i] {
            inversions += (mid - i) as u64; // values[j] jumps every left item still waiting
            merged.push(values[j]);
            j += 1;
        } else {
            merged.push(values[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&values[i..mid]);
    merged.extend_from_slice(&values[j..]);
    values.copy_from_slice(&merged);
    inversions
}

/// Spearman rho: the Pearson correlation of the average ranks (ties share their mean rank).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "spearman: vectors of different lengths");
    if x.len() < 2 || x.iter().chain(y).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks, ascending; a run of equal values gets the mean of the ranks it spans.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end + 1) as f64 / 2.0; // mean of start+1 ..= end
        for &i in &order[start..end] {
            ranks[i] = mean_rank;
        }
        start = end;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mean_x, mean_y) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// The items a top-`fraction` selection counts: ceil(fraction * n), at least 1. The product is
/// nudged down first because 0.1 * 30 is 3.0000000000000004 in floating point.
pub fn top_count(n: usize, fraction: f64) -> usize {
    ((fraction * n as f64 - 1e-9).ceil() as usize).clamp(1, n.max(1))
}

/// Of the truth's top `fraction` (k = [`top_count`] items), the share also in the score's top k.
///
/// Ties at a cut count fractionally, so the result is deterministic and ignores item order: each
/// item of a tied group straddling the cut is in the top by (places left) / (group size), and the
/// overlap counts every item at the smaller of its two shares. A score equal to the truth thus
/// gets 1 even where the truth ties at the cut, and a constant score gets k/n, as a random pick.
pub fn top_recall(scores: &[f64], truth: &[f64], fraction: f64) -> f64 {
    assert_eq!(scores.len(), truth.len(), "top_recall: vectors of different lengths");
    assert!(fraction > 0.0 && fraction <= 1.0, "top_recall: fraction {fraction} outside (0, 1]");
    if scores.is_empty() || scores.iter().chain(truth).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let k = top_count(scores.len(), fraction);
    let (in_score, in_truth) = (top_membership(scores, k), top_membership(truth, k));
    in_score.iter().zip(&in_truth).map(|(a, b)| a.min(*b)).sum::<f64>() / k as f64
}

/// Each item's share of the k largest places: 1 above the cut, 0 below, split within a tie.
fn top_membership(values: &[f64], k: usize) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut membership = vec![0.0; values.len()];
    let mut above = 0;
    while above < k {
        let equal = order[above..].iter().take_while(|&&i| values[i] == values[order[above]]).count();
        let share = (k - above).min(equal) as f64 / equal as f64;
        order[above..above + equal].iter().for_each(|&i| membership[i] = share);
        above += equal;
    }
    membership
}

/// Mean Kendall tau-b within `bins` quantile bins of `costs` (e.g. 4 for FLOPs quartiles), over
/// the bins where tau is defined. An item at 0-based position p of the cost order falls in bin
/// floor(p * bins / n); tied costs use their mean position, so they always share a bin.
pub fn binned_tau(scores: &[f64], truth: &[f64], costs: &[f64], bins: usize) -> f64 {
    assert!(scores.len() == truth.len() && truth.len() == costs.len(), "binned_tau: vectors of different lengths");
    assert!(bins > 0, "binned_tau: no bins");
    if scores.iter().chain(truth).chain(costs).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let n = costs.len() as f64;
    let mut members = vec![(Vec::new(), Vec::new()); bins];
    for (i, rank) in average_ranks(costs).into_iter().enumerate() {
        let bin = (((rank - 1.0) * bins as f64 / n) as usize).min(bins - 1);
        members[bin].0.push(scores[i]);
        members[bin].1.push(truth[i]);
    }
    let taus: Vec<f64> = members.iter().map(|(s, t)| kendall_tau_b(s, t)).filter(|tau| !tau.is_nan()).collect();
    if taus.is_empty() {
        return f64::NAN;
    }
    taus.iter().sum::<f64>() / taus.len() as f64
}

/// A percentile bootstrap interval: the bounds of the middle 95% of a statistic's resamples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    #[serde(with = "nan_as_null")]
    pub low: f64,
    #[serde(with = "nan_as_null")]
    pub high: f64,
}

/// Draws `resamples` sets of n item indices with replacement (seeded), evaluates `statistic` on
/// each, skips NaN results, and returns the 2.5% and 97.5% percentiles (linear interpolation
/// between order statistics); NaN bounds where no resample is defined.
pub fn bootstrap_interval(n: usize, resamples: usize, seed: u64, statistic: impl Fn(&[usize]) -> f64) -> Interval {
    let mut rng = SplitMix64::scrambled(seed);
    let mut values = Vec::with_capacity(resamples);
    let mut indices = vec![0; n];
    for _ in 0..resamples {
        indices.iter_mut().for_each(|i| *i = rng.below_by_modulo(n));
        let value = statistic(&indices);
        if !value.is_nan() {
            values.push(value);
        }
    }
    values.sort_by(f64::total_cmp);
    Interval { low: percentile(&values, 0.025), high: percentile(&values, 0.975) }
}

/// The q-quantile of sorted values, interpolating linearly between neighbours; NaN for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (position - below as f64) * (sorted[above] - sorted[below])
}

/// `values` at `indices`, in that order (a bootstrap resample of one column).
pub fn gather(values: &[f64], indices: &[usize]) -> Vec<f64> {
    indices.iter().map(|&i| values[i]).collect()
}

/// Serde for an f64 that may be NaN: JSON has no NaN, so it is written as null and read back.
pub(super) mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        match value.is_nan() {
            true => serializer.serialize_none(),
            false => serializer.serialize_f64(*value),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: [f64; 5] = [1.0, 2.0, 3.0, 4.0, 5.0];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// The textbook O(n^2) tau-b, to check the O(n log n) one against.
    fn tau_b_by_pairs(x: &[f64], y: &[f64]) -> f64 {
        let sign = |a: f64, b: f64| a.partial_cmp(&b).unwrap() as i8 as f64;
        let (mut s, mut pairs_x, mut pairs_y) = (0.0, 0.0, 0.0);
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let (dx, dy) = (sign(x[i], x[j]), sign(y[i], y[j]));
                s += dx * dy;
                pairs_x += dx.abs();
                pairs_y += dy.abs();
            }
        }
        s / (pairs_x * pairs_y).sqrt()
    }

    #[test]
    fn tau_b_matches_scipy_with_ties() {
        // scipy.stats.kendalltau([1,2,3,4,5], [5,6,7,8,7]): P=8, Q=1, one y tie: 7/sqrt(10*9).
        assert!(close(kendall_tau_b(&X, &[5.0, 6.0, 7.0, 8.0, 7.0]), 0.7378647873726218));
        assert!(close(kendall_tau_b(&X, &[5.0, 6.0, 7.0, 8.0, 7.0]), 7.0 / 90f64.sqrt()));
        // Ties in both: x=[1,1,2,3], y=[1,2,2,3]: P=4, Q=0, n0=6, n1=1, n2=1, so 4/5.
        assert!(close(kendall_tau_b(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]), 0.8));
        // A joint tie: x=[1,1,2], y=[3,3,1]: P=0, Q=2, n0=3, n1=n2=1, so -2/2.
        assert!(close(kendall_tau_b(&[1.0, 1.0, 2.0], &[3.0, 3.0, 1.0]), -1.0));
    }

    #[test]
    fn tau_b_agrees_with_the_pairwise_definition_on_tied_data() {
        let mut rng = SplitMix64::scrambled(3);
        for n in [2, 3, 7, 40, 200] {
            let x: Vec<f64> = (0..n).map(|_| rng.below_by_modulo(5) as f64).collect();
            let y: Vec<f64> = x.iter().map(|v| v + rng.below_by_modulo(4) as f64).collect();
            let (fast, slow) = (kendall_tau_b(&x, &y), tau_b_by_pairs(&x, &y));
            assert!(close(fast, slow) || (fast.is_nan() && slow.is_nan()), "n={n}: {fast} vs {slow}");
        }
    }

    #[test]
    fn spearman_matches_scipy_with_ties() {
        // scipy.stats.spearmanr([1,2,3,4,5], [5,6,7,8,7]): ranks of y are [1,2,3.5,5,3.5].
        assert!(close(spearman(&X, &[5.0, 6.0, 7.0, 8.0, 7.0]), 0.8207826816681233));
        assert_eq!(average_ranks(&[5.0, 6.0, 7.0, 8.0, 7.0]), [1.0, 2.0, 3.5, 5.0, 3.5]);
        // x=[1,1,2,3] ranks [1.5,1.5,3,4], y=[1,2,2,3] ranks [1,2.5,2.5,4]; rank deviations
        // (-1,-1,.5,1.5) and (-1.5,0,0,1.5): sxy = 3.75, sxx = syy = 4.5.
        assert!(close(spearman(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]), 3.75 / 4.5));
    }

    #[test]
    fn perfect_reversed_and_undefined_orders() {
        let reversed: Vec<f64> = X.iter().rev().copied().collect();
        assert!(close(kendall_tau_b(&X, &X), 1.0) && close(spearman(&X, &X), 1.0));
        assert!(close(kendall_tau_b(&X, &reversed), -1.0) && close(spearman(&X, &reversed), -1.0));
        assert!(kendall_tau_b(&X, &[2.0; 5]).is_nan() && spearman(&[2.0; 5], &X).is_nan());
        assert!(kendall_tau_b(&[1.0], &[1.0]).is_nan() && spearman(&[], &[]).is_nan());
        assert!(kendall_tau_b(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn top_recall_counts_the_shared_top_and_splits_ties_at_the_cut() {
        let truth: Vec<f64> = (0..10).map(f64::from).collect();
        // k = ceil(0.2 * 10) = 2: truth's top is {8, 9}; the score's top {9, 0} shares one.
        let mut scores = truth.clone();
        scores[0] = 100.0;
        assert!(close(top_recall(&scores, &truth, 0.2), 0.5));
        assert!(close(top_recall(&truth, &truth, 0.1), 1.0));
        // A constant score: every item holds 2/10 of its top 2.
        assert!(close(top_recall(&[1.0; 10], &truth, 0.2), 0.2));
        // Score ties at the cut: 9 is in; 8 and 7 tie for the last place, 8 gets half of it.
        let tied = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 9.0];
        assert!(close(top_recall(&tied, &truth, 0.2), 0.75));
        // Truth ties at the cut (k = 1, two items share it): the truth itself still recalls 1.
        let truth_tied = [1.0, 2.0, 3.0, 3.0];
        assert!(close(top_recall(&truth_tied, &truth_tied, 0.25), 1.0));
        assert!(close(top_recall(&[4.0, 3.0, 2.0, 1.0], &truth_tied, 0.25), 0.0));
        assert!(close(top_recall(&[1.0, 2.0, 4.0, 3.0], &truth_tied, 0.25), 0.5));
        assert_eq!(top_count(5, 0.1), 1);
        assert_eq!(top_count(31, 0.1), 4);
        assert_eq!(top_count(30, 0.1), 3);
        assert_eq!(top_count(3281, 0.1), 329);
    }

    #[test]
    fn binned_tau_averages_the_defined_bins() {
        // Costs put items 0-1, 2-3, 4-5, 6-7 in four bins. Bin 0 agrees (+1), bin 1 disagrees
        // (-1), bin 2 has a constant score (NaN, skipped), bin 3 agrees (+1): mean 1/3.
        let costs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let truth = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
        let scores = [1.0, 2.0, 2.0, 1.0, 5.0, 5.0, 0.0, 3.0];
        assert!(close(binned_tau(&scores, &truth, &costs, 4), 1.0 / 3.0));
        // Tied costs share a bin: items 1 and 2 (cost 2) have mean position 1.5, bin 0 of 2.
        let tau = binned_tau(&[1.0, 2.0, 3.0, 9.0], &[1.0, 2.0, 3.0, 0.0], &[1.0, 2.0, 2.0, 4.0], 2);
        assert!(close(tau, 1.0), "{tau}");
        assert!(binned_tau(&[1.0; 4], &X[..4], &X[..4], 2).is_nan());
    }

    #[test]
    fn bootstrap_brackets_a_clear_correlation_and_repeats_for_a_seed() {
        let mut rng = SplitMix64::scrambled(11);
        let truth: Vec<f64> = (0..60).map(f64::from).collect();
        let scores: Vec<f64> = truth.iter().map(|t| t + 15.0 * rng.uniform()).collect();
        let tau = kendall_tau_b(&scores, &truth);
        let stat = |idx: &[usize]| kendall_tau_b(&gather(&scores, idx), &gather(&truth, idx));
        let interval = bootstrap_interval(truth.len(), 500, 7, stat);
        assert!(interval.low < tau && tau < interval.high, "{tau} outside {interval:?}");
        assert!(interval.low > 0.3 && interval.high < 1.0, "{interval:?}");
        assert_eq!(interval, bootstrap_interval(truth.len(), 500, 7, stat));
        assert_ne!(interval, bootstrap_interval(truth.len(), 500, 8, stat));
    }

    #[test]
    fn bootstrap_skips_undefined_resamples_and_percentiles_interpolate() {
        let always_nan = bootstrap_interval(5, 20, 1, |_| f64::NAN);
        assert!(always_nan.low.is_nan() && always_nan.high.is_nan());
        let sorted: Vec<f64> = (0..=40).map(f64::from).collect();
        assert!(close(percentile(&sorted, 0.025), 1.0) && close(percentile(&sorted, 0.975), 39.0));
        assert!(close(percentile(&[0.0, 10.0], 0.025), 0.25));
    }

    #[test]
    fn nan_bounds_survive_json() {
        let interval = Interval { low: f64::NAN, high: 0.5 };
        let json = serde_json::to_string(&interval).unwrap();
        assert_eq!(json, r#"{"low":null,"high":0.5}"#);
        let back: Interval = serde_json::from_str(&json).unwrap();
        assert!(back.low.is_nan() && back.high == 0.5);
    }
}
