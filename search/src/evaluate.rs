//! How a candidate gets scored: the [`TrialEvaluator`] turns one architecture into metrics, and an
//! [`Executor`] decides where and how concurrently evaluators run.
//!
//! The runner never calls an evaluator directly; it hands a batch to an executor and receives
//! each result as it finishes, on its own thread. A distributed executor (workers pulling
//! trials from a queue) implements the same trait, so strategies and the runner do not change.

mod executor;
mod supernet;
mod surrogate;
mod table;
mod table_latency;
mod zero_cost;

pub(crate) use executor::evaluate_guarded;
pub use executor::LocalPool;
pub use supernet::{SupernetEvaluator, CALIBRATION_BATCHES};
pub use surrogate::{surrogate_accuracy, surrogate_latency_ms, SurrogateEvaluator};
pub use table::TableEvaluator;
pub use table_latency::TableLatency;
pub use zero_cost::{reference_drawn, reference_sample, ScoreScale, ZeroCost, ZeroCostEvaluator, REFERENCE_NETWORKS};

use serde::{Deserialize, Serialize};

/// One evaluation request. `seed` drives everything random in the evaluation (weight init,
/// data order, noise), so the same trial gives the same result on a rerun.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrialSpec {
    pub id: u64,
    pub arch: space::Arch,
    pub choices: Vec<usize>,
    pub seed: u64,
    /// CPU threads this evaluation may use.
    pub threads: usize,
    /// Training epochs of this evaluation (a successive-halving rung's budget); `None`: the
    /// evaluator's own setting. Evaluators that do not train (table, surrogate, zero-cost)
    /// ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// What the evaluator scored, in [0, 1], higher better; whether it is an accuracy is the
    /// evaluator's [`ValueKind`](crate::setup::ValueKind). Journals before it had a name of
    /// its own called it `val_accuracy`.
    #[serde(alias = "val_accuracy")]
    pub score: f64,
    pub latency_ms: f64,
    /// `measured`, `predicted` or `surrogate`.
    pub latency_source: String,
    pub macs: u64,
    pub params: u64,
    pub train_seconds: f64,
    /// Extras of the evaluator (losses, epochs, device), journalled as they are.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Evaluation {
    /// Rejects results a reward cannot use (NaN, infinite or out-of-range numbers).
    pub fn check(self) -> Result<Evaluation, String> {
        let score_ok = self.score.is_finite() && (0.0..=1.0).contains(&self.score);
        match (score_ok, self.latency_ms.is_finite() && self.latency_ms > 0.0) {
            (true, true) => Ok(self),
            (false, _) => Err(format!("evaluation returned score {}", self.score)),
            (_, false) => Err(format!("evaluation returned latency {}ms", self.latency_ms)),
        }
    }
}

/// Scores one architecture. Errors (out of memory, NaN loss, a kernel failure) come back as
/// `Err(reason)` and become a failed, penalised trial; they never stop the search.
pub trait TrialEvaluator: Send + Sync {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String>;

    /// A short name for the run config and logs.
    fn name(&self) -> &str {
        "evaluator"
    }
}

/// Runs a batch of trials and reports each result through `done` as it finishes, on the
/// caller's thread, in completion order. Every trial is reported exactly once; a panicking
/// evaluator is reported as an error.
pub trait Executor: Send + Sync {
    fn run(&self, trials: Vec<TrialSpec>, done: &mut dyn FnMut(&TrialSpec, Result<Evaluation, String>));

    /// How many trials run at once; the runner sizes its batches and thread shares by it.
    fn workers(&self) -> usize;
}
