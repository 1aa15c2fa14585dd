//! The MnasNet reward `ACC * (COST / T)^w`, `w = alpha` if `COST <= T` else `beta` (reference
//! section 4.2). COST is latency by default; a MACs or parameter target swaps the cost measure.
//!
//! Soft constraint (`alpha = beta = -0.07`, the default): twice the cost needs about 5% more
//! accuracy for equal reward. Hard constraint (`alpha = 0, beta = -1`): free below the target,
//! steeply penalised above it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A latency target in milliseconds, parsed from `75ms`, `0.075s` or `75000us`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LatencyBudget(f64);

impl LatencyBudget {
    pub fn from_ms(ms: f64) -> Result<Self, String> {
        match ms.is_finite() && ms > 0.0 {
            true => Ok(LatencyBudget(ms)),
            false => Err(format!("target latency must be positive, got {ms}ms")),
        }
    }

    pub fn ms(self) -> f64 {
        self.0
    }
}

impl FromStr for LatencyBudget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid latency `{s}` (hint: write a positive number with a unit and no space: 75ms, 0.075s or 75000us)")
        };
        // Longest unit first: `ms` and `us` also end in `s`.
        let (number, scale) = [("ms", 1.0), ("us", 1e-3), ("s", 1e3)]
            .iter()
            .find_map(|&(unit, scale)| s.strip_suffix(unit).map(|n| (n, scale)))
            .ok_or_else(bad)?;
        let plain = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
        let value: f64 = number.parse().ok().filter(|_| plain).ok_or_else(bad)?;
        LatencyBudget::from_ms(value * scale).map_err(|_| bad())
    }
}

impl fmt::Display for LatencyBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl TryFrom<String> for LatencyBudget {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<LatencyBudget> for String {
    fn from(b: LatencyBudget) -> String {
        b.to_string()
    }
}

/// What the reward's cost term measures, and its target value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Latency(LatencyBudget),
    /// Multiply-adds at the target resolution.
    Macs(u64),
    Params(u64),
}

impl Target {
    /// The cost of an evaluated candidate in this target's unit.
    pub fn cost_of(&self, latency_ms: f64, macs: u64, params: u64) -> f64 {
        match self {
            Target::Latency(_) => latency_ms,
            Target::Macs(_) => macs as f64,
            Target::Params(_) => params as f64,
        }
    }

    pub fn value(&self) -> f64 {
        match *self {
            Target::Latency(b) => b.ms(),
            Target::Macs(m) => m as f64,
            Target::Params(p) => p as f64,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Latency(b) => write!(f, "latency {b}"),
            Target::Macs(m) => write!(f, "{m} MACs"),
            Target::Params(p) => write!(f, "{p} params"),
        }
    }
}

/// The reward function: a target and the two exponents.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reward {
    pub target: Target,
    /// Exponent while the cost is within the target.
    pub alpha: f64,
    /// Exponent once the cost exceeds the target.
    pub beta: f64,
}

impl Reward {
    pub fn soft(target: Target) -> Self {
        Reward { target, alpha: -0.07, beta: -0.07 }
    }

    pub fn hard(target: Target) -> Self {
        Reward { target, alpha: 0.0, beta: -1.0 }
    }

    /// `accuracy * (cost / T)^w`; a non-finite or non-positive input scores 0, the penalty.
    pub fn score(&self, accuracy: f64, cost: f64) -> f64 {
        if !(accuracy.is_finite() && cost.is_finite() && cost > 0.0 && accuracy >= 0.0) {
            return 0.0;
        }
        let ratio = cost / self.target.value();
        let w = if ratio <= 1.0 { self.alpha } else { self.beta };
        accuracy * ratio.powf(w)
    }

    /// Whether `cost` meets the target.
    pub fn feasible(&self, cost: f64) -> bool {
        cost <= self.target.value()
    }
}

/// Orders two scores or rewards, higher better, with NaN below every number: a NaN ranks
/// worst (the same way every time) instead of winning a comparison or panicking a sort.
pub fn rank(a: f64, b: f64) -> Ordering {
    b.is_nan().cmp(&a.is_nan()).then(a.total_cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Target {
        Target::Latency(LatencyBudget::from_ms(v).unwrap())
    }

    #[test]
    fn budgets_parse_with_units_only() {
        for (s, want) in [("75ms", 75.0), ("0.075s", 75.0), ("75000us", 75.0), ("1.5ms", 1.5)] {
            assert!((s.parse::<LatencyBudget>().unwrap().ms() - want).abs() < 1e-9, "{s}");
        }
        for s in ["75", "75 ms", "-75ms", "0ms", "ms", "", "75msec", "1e2ms", "75MS", "inf ms", "nanms", " 75ms"] {
            let e = s.parse::<LatencyBudget>().unwrap_err();
            assert!(e.contains("hint: ") && !e.contains('\n'), "{s}: {e}");
        }
    }

    #[test]
    fn soft_reward_trades_five_percent_per_doubling() {
        let r = Reward::soft(ms(75.0));
        assert_eq!(r.score(0.8, 75.0), 0.8);
        let twice = r.score(0.8 * 1.05, 150.0);
        assert!((twice - 0.8).abs() < 0.002, "{twice}");
        assert!((r.score(0.7, 37.5) - 0.7 * 2f64.powf(0.07)).abs() < 1e-12);
    }

    #[test]
    fn hard_reward_is_flat_below_and_proportional_above() {
        let r = Reward::hard(ms(75.0));
        assert_eq!(r.score(0.7, 10.0), 0.7);
        assert_eq!(r.score(0.7, 75.0), 0.7);
        assert!((r.score(0.7, 150.0) - 0.35).abs() < 1e-12);
    }

    #[test]
    fn broken_metrics_score_the_penalty() {
        let r = Reward::soft(ms(75.0));
        for (a, c) in [(f64::NAN, 10.0), (0.5, f64::NAN), (0.5, 0.0), (0.5, f64::INFINITY), (-1.0, 3.0)] {
            assert_eq!(r.score(a, c), 0.0);
        }
    }

    #[test]
    fn nan_ranks_below_every_number() {
        let mut v = [0.5, f64::NAN, f64::NEG_INFINITY, -f64::NAN, 0.9, f64::INFINITY];
        v.sort_by(|a, b| rank(*b, *a));
        assert_eq!(v[..4], [f64::INFINITY, 0.9, 0.5, f64::NEG_INFINITY]);
        assert!(v[4..].iter().all(|x| x.is_nan()));
        assert_eq!(rank(f64::NAN, f64::NEG_INFINITY), Ordering::Less);
        assert_eq!(rank(0.3, f64::NAN), Ordering::Greater);
    }

    #[test]
    fn macs_and_params_targets_use_their_own_cost() {
        let r = Reward::hard(Target::Macs(300_000_000));
        let cost = r.target.cost_of(999.0, 600_000_000, 1);
        assert!((r.score(0.6, cost) - 0.3).abs() < 1e-12);
        let json = serde_json::to_string(&Reward::soft(ms(75.0))).unwrap();
        assert!(json.contains("\"75ms\""), "{json}");
        assert_eq!(serde_json::from_str::<Reward>(&json).unwrap(), Reward::soft(ms(75.0)));
    }
}
