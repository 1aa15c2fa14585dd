//! Successive halving (`--fidelity sh --eta E --rungs R`, or `"fidelity": {"kind": "sh", ...}`
//! in the search config): the strategy's batch becomes a bracket of n candidates, all scored at
//! rung 0; the best floor(n/E) of each rung are scored again, from scratch with the same seed,
//! at the next rung with E times the training, up to rung R-1, which trains the proxy's
//! configured epochs. The strategy then learns each candidate's reward at its highest rung.
//!
//! Everything here is a pure function of the configuration and the journal, so a resumed run
//! recomputes the same promotions and trial ids as an uninterrupted one.

use serde::{Deserialize, Serialize};

/// How much training each evaluation gets; recorded in the run's config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FidelitySpec", into = "FidelitySpec")]
pub enum Fidelity {
    /// Every candidate is scored once, with the evaluator's full budget.
    #[default]
    Full,
    /// Successive halving: each rung keeps the best 1/eta for the next.
    Halving { eta: usize, rungs: usize },
}

/// The config block as written (`kind` full or sh; eta and rungs default to 3).
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum FidelitySpec {
    Full,
    Sh {
        #[serde(default = "three")]
        eta: usize,
        #[serde(default = "three")]
        rungs: usize,
    },
}

fn three() -> usize {
    3
}

impl TryFrom<FidelitySpec> for Fidelity {
    type Error = String;

    fn try_from(spec: FidelitySpec) -> Result<Self, String> {
        match spec {
            FidelitySpec::Full => Ok(Fidelity::Full),
            FidelitySpec::Sh { eta, rungs } => Fidelity::halving(eta, rungs),
        }
    }
}

impl From<Fidelity> for FidelitySpec {
    fn from(f: Fidelity) -> Self {
        match f {
            Fidelity::Full => FidelitySpec::Full,
            Fidelity::Halving { eta, rungs } => FidelitySpec::Sh { eta, rungs },
        }
    }
}

/// The most candidates a bracket may need (eta^(rungs-1)); more is surely a typo.
const MAX_BRACKET: usize = 1 << 20;

impl Fidelity {
    /// Successive halving, or one line naming the flag and config field that is out of range.
    pub fn halving(eta: usize, rungs: usize) -> Result<Self, String> {
        if eta < 2 {
            return Err(format!(
                "eta {eta} (--eta, fidelity.eta): must be at least 2 (each rung keeps the best 1/eta)"
            ));
        }
        if rungs < 1 {
            return Err("rungs 0 (--rungs, fidelity.rungs): must be at least 1".into());
        }
        match eta.checked_pow(rungs as u32 - 1) {
            Some(n) if n <= MAX_BRACKET => Ok(Fidelity::Halving { eta, rungs }),
            _ => Err(format!(
                "eta {eta} with {rungs} rungs (--eta/--rungs, fidelity.eta/rungs): a bracket would need more than {MAX_BRACKET} candidates"
            )),
        }
    }

    pub fn is_full(&self) -> bool {
        *self == Fidelity::Full
    }

    pub fn rungs(&self) -> usize {
        match *self {
            Fidelity::Full => 1,
            Fidelity::Halving { rungs, .. } => rungs,
        }
    }

    /// Candidates a bracket needs for one of them to reach the top rung: eta^(rungs-1).
    pub fn min_bracket(&self) -> usize {
        match *self {
            Fidelity::Full => 1,
            Fidelity::Halving { eta, rungs } => eta.pow(rungs as u32 - 1),
        }
    }

    /// How many evaluations each rung of a bracket of `n` candidates holds (at most; a failed
    /// candidate is never promoted): n, floor(n/eta), floor(n/eta^2), ...
    pub fn rung_sizes(&self, n: usize) -> Vec<usize> {
        match *self {
            Fidelity::Full => vec![n],
            Fidelity::Halving { eta, rungs } => std::iter::successors(Some(n), |k| Some(k / eta)).take(rungs).collect(),
        }
    }

    /// The most evaluations a bracket of `n` candidates makes.
    pub fn evaluations(&self, n: usize) -> usize {
        self.rung_sizes(n).iter().sum()
    }

    /// The epochs each rung trains, the top rung training `top` (the proxy's configured epochs)
    /// and each rung below 1/eta of the next; `top` must be a multiple of eta^(rungs-1).
    pub fn rung_epochs(&self, top: usize) -> Result<Vec<usize>, String> {
        let Fidelity::Halving { eta, rungs } = *self else { return Ok(vec![top]) };
        let step = self.min_bracket();
        if top == 0 || !top.is_multiple_of(step) {
            let allowed: Vec<String> = (1..=3).map(|k| (k * step).to_string()).collect();
            return Err(format!(
                "proxy.epochs {top} with --fidelity sh --eta {eta} --rungs {rungs}: the top rung trains proxy.epochs and each rung below 1/{eta} of it, so proxy.epochs must be a multiple of {step} ({}, ...)",
                allowed.join(", ")
            ));
        }
        Ok((0..rungs).map(|r| top / eta.pow((rungs - 1 - r) as u32)).collect())
    }

    /// Candidates per strategy update for a configured `batch_size` (0: automatic). At full
    /// fidelity: `batch_size`, or one per worker and at least 8. Under successive halving, a
    /// bracket: the smallest multiple of [`Self::min_bracket`] that holds `batch_size` (or one
    /// per worker), so that every bracket brings a candidate to the top rung.
    pub fn bracket(&self, batch_size: usize, workers: usize) -> usize {
        let min = self.min_bracket();
        match (self, batch_size) {
            (Fidelity::Full, 0) => workers.max(8),
            (Fidelity::Full, n) => n,
            (Fidelity::Halving { .. }, 0) => workers.max(1).div_ceil(min) * min,
            (Fidelity::Halving { .. }, n) => n.div_ceil(min) * min,
        }
    }
}

/// The candidates of one rung that go on to the next: the best floor(n/eta) of the n by reward
/// (a NaN below every number, see [`rank`](crate::reward::rank)), ties to the lower trial id; a
/// candidate without a score (failed, invalid) counts in n but is never promoted. Returned in
/// trial-id order.
pub fn promote(scores: &[(u64, Option<f64>)], eta: usize) -> Vec<u64> {
    let keep = scores.len() / eta.max(1);
    let mut ranked: Vec<(u64, f64)> = scores.iter().filter_map(|&(id, s)| s.map(|s| (id, s))).collect();
    ranked.sort_by(|a, b| crate::reward::rank(b.1, a.1).then(a.0.cmp(&b.0)));
    let mut promoted: Vec<u64> = ranked.into_iter().take(keep).map(|(id, _)| id).collect();
    promoted.sort_unstable();
    promoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_keeps_the_best_floor_n_over_eta_ties_to_the_lower_id() {
        let scores: Vec<(u64, Option<f64>)> = [0.1, 0.9, 0.5, 0.5, 0.2, 0.8, 0.5, 0.3, 0.4]
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u64 + 20, Some(s)))
            .collect();
        assert_eq!(promote(&scores, 3), vec![21, 22, 25], "0.9, 0.8 and the first of three 0.5s");
        assert_eq!(promote(&scores, 2), vec![21, 22, 23, 25]);
        assert_eq!(promote(&scores[..2], 3), Vec::<u64>::new(), "fewer than eta promote none");
        let mut reversed = scores.clone();
        reversed.reverse();
        assert_eq!(promote(&reversed, 3), promote(&scores, 3), "the input order does not matter");
    }

    #[test]
    fn a_nan_score_is_promoted_after_every_number() {
        let scores = [(1, Some(f64::NAN)), (2, Some(0.1)), (3, Some(-f64::NAN)), (4, None)];
        assert_eq!(promote(&scores, 4), vec![2], "total_cmp alone puts +NaN above 0.1");
        assert_eq!(promote(&scores, 2), vec![1, 2]);
    }

    #[test]
    fn unscored_candidates_count_but_are_never_promoted() {
        let scores = [(0, None), (1, Some(0.0)), (2, None), (3, None), (4, None), (5, None)];
        assert_eq!(promote(&scores, 3), vec![1], "6 / 3 = 2 places, one scored candidate");
        assert_eq!(promote(&[(0, None), (1, None), (2, None)], 3), Vec::<u64>::new());
    }

    #[test]
    fn rungs_train_a_power_of_eta_less_and_other_epochs_are_refused() {
        let sh = Fidelity::halving(3, 3).unwrap();
        assert_eq!(sh.rung_epochs(27).unwrap(), vec![3, 9, 27]);
        assert_eq!(sh.rung_epochs(9).unwrap(), vec![1, 3, 9]);
        let err = sh.rung_epochs(2).unwrap_err();
        assert!(err.contains("proxy.epochs 2") && err.contains("multiple of 9 (9, 18, 27, ...)"), "{err}");
        assert!(sh.rung_epochs(0).is_err());
        assert_eq!(Fidelity::halving(2, 1).unwrap().rung_epochs(5).unwrap(), vec![5]);
        assert_eq!(Fidelity::Full.rung_epochs(2).unwrap(), vec![2]);
    }

    #[test]
    fn brackets_shrink_by_eta_and_need_eta_to_the_rungs_minus_one() {
        let sh = Fidelity::halving(3, 3).unwrap();
        assert_eq!((sh.rung_sizes(9), sh.evaluations(9)), (vec![9, 3, 1], 13));
        assert_eq!(sh.rung_sizes(20), vec![20, 6, 2]);
        assert_eq!((sh.bracket(0, 1), sh.bracket(0, 10)), (9, 18), "one candidate per worker, rounded up");
        assert_eq!((sh.bracket(4, 1), sh.bracket(9, 4), sh.bracket(12, 4)), (9, 9, 18), "batch_size rounded up");
        assert_eq!((Fidelity::Full.bracket(0, 3), Fidelity::Full.bracket(5, 3)), (8, 5));
        assert_eq!(Fidelity::Full.rung_sizes(6), vec![6]);
    }

    #[test]
    fn the_config_block_reads_validates_and_round_trips() {
        let read = |s: &str| serde_json::from_str::<Fidelity>(s).map_err(|e| e.to_string());
        assert_eq!(read(r#"{"kind": "sh", "eta": 2, "rungs": 4}"#), Ok(Fidelity::Halving { eta: 2, rungs: 4 }));
        assert_eq!(read(r#"{"kind": "sh"}"#), Ok(Fidelity::Halving { eta: 3, rungs: 3 }));
        assert_eq!(read(r#"{"kind": "full"}"#), Ok(Fidelity::Full));
        assert!(read(r#"{"kind": "sh", "eta": 1}"#)
            .unwrap_err()
            .contains("eta 1 (--eta, fidelity.eta): must be at least 2"));
        assert!(read(r#"{"kind": "sh", "rungs": 0}"#).unwrap_err().contains("fidelity.rungs"));
        assert!(read(r#"{"kind": "hyperband"}"#).unwrap_err().contains("unknown variant `hyperband`"));
        assert!(read(r#"{"kind": "sh", "eta": 3, "rung": 2}"#).unwrap_err().contains("unknown field `rung`"));
        assert!(Fidelity::halving(1000, 9).unwrap_err().contains("more than"));
        for f in [Fidelity::Full, Fidelity::Halving { eta: 4, rungs: 2 }] {
            assert_eq!(read(&serde_json::to_string(&f).unwrap()), Ok(f));
        }
    }
}
