//! Order statistics of timings: the one median and nearest-rank percentile that every benchmark,
//! latency measurement and table in the workspace uses.

/// The median of `xs` (the mean of the middle two for an even count); NaN for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The nearest-rank `q` percentile (`0 < q <= 1`) of `sorted`, which is in ascending order;
/// NaN for none.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!((nearest_rank(&xs, 0.25), nearest_rank(&xs, 0.9), nearest_rank(&xs, 1.0)), (3.0, 9.0, 10.0));
        assert_eq!(nearest_rank(&xs, 0.0), 1.0);
        assert!(nearest_rank(&[], 0.5).is_nan());
    }
}
