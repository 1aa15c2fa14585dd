//! A search run folder read back for reporting: its config, the journal in id order and the
//! budget it used. Read-only; works on a finished run and on one still in progress.

use std::path::{Path, PathBuf};

use serde::Serialize;

use search::results::{self, parse_json, read_lines, Status, Summary, TrialRecord};
use search::reward::Target;
use search::runner::{RunConfig, Runner};
use search::setup::ValueKind;

pub struct RunFolder {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// Every journalled trial, by id.
    pub records: Vec<TrialRecord>,
    /// `summary.json`, present once the run has finished.
    pub summary: Option<Summary>,
    pub wall_seconds: f64,
}

/// What a run spent of its budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budget {
    pub trials_done: usize,
    pub trials_planned: usize,
    pub evaluated: usize,
    pub failed: usize,
    pub invalid: usize,
    pub cached: usize,
    pub wall_seconds: f64,
    pub time_budget_seconds: Option<f64>,
    pub finished: bool,
}

impl RunFolder {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let config = Runner::read_config(dir)?;
        let trials = dir.join("trials.jsonl");
        if !trials.exists() {
            return Err(format!("{}: missing (hint: the run has not finished a trial yet)", trials.display()));
        }
        let mut records: Vec<TrialRecord> = read_lines(&trials)?;
        records.sort_by_key(|r| r.id);
        let summary = read_json_if_present::<Summary>(&dir.join("summary.json"))?;
        let wall_seconds = match &summary {
            Some(s) => s.wall_seconds,
            None => checkpoint_elapsed(dir)?.unwrap_or_else(|| journal_span(&records)),
        };
        Ok(RunFolder { dir: dir.to_path_buf(), config, records, summary, wall_seconds })
    }

    /// Trials evaluated in their own right (not cached copies), by id.
    pub fn evaluated(&self) -> Vec<&TrialRecord> {
        self.records.iter().filter(|r| r.status == Status::Ok && r.evaluation.is_some()).collect()
    }

    /// The `n` highest-reward evaluated trials, highest rung first (earliest id first on ties).
    pub fn top(&self, n: usize) -> Vec<&TrialRecord> {
        let mut all = self.evaluated();
        all.sort_by(|a, b| b.rung.cmp(&a.rung).then(search::reward::rank(b.reward, a.reward)).then(a.id.cmp(&b.id)));
        all.truncate(n);
        all
    }

    /// What the trials' scores are, from the evaluator the run recorded (so folders written
    /// before summaries named it read the same).
    pub fn metric(&self) -> ValueKind {
        self.config.evaluator.value_kind()
    }

    pub fn pareto(&self) -> Vec<&TrialRecord> {
        results::pareto(&self.records)
    }

    pub fn best(&self) -> Option<&TrialRecord> {
        results::best(&self.records, &self.config.reward)
    }

    /// The latency target in ms, when the reward's target is latency.
    pub fn target_ms(&self) -> Option<f64> {
        match self.config.reward.target {
            Target::Latency(b) => Some(b.ms()),
            _ => None,
        }
    }

    pub fn budget(&self) -> Budget {
        let count = |s: Status| self.records.iter().filter(|r| r.status == s).count();
        Budget {
            trials_done: self.records.len(),
            trials_planned: self.config.planned_evaluations(),
            evaluated: count(Status::Ok),
            failed: count(Status::Failed),
            invalid: count(Status::Invalid),
            cached: count(Status::Cached),
            wall_seconds: self.wall_seconds,
            time_budget_seconds: self.config.time_seconds,
            finished: self.summary.is_some(),
        }
    }

    /// One line naming the run's setup: strategy, evaluator, target, seed, data and latency table.
    pub fn setup_line(&self) -> String {
        let c = &self.config;
        let strategy = serde_json::to_value(c.strategy.kind).ok().and_then(|v| v.as_str().map(String::from));
        let table =
            c.proxy.latency.table.as_ref().map_or(String::new(), |t| format!(", latency table {}", t.display()));
        let fidelity = match c.fidelity {
            search::halving::Fidelity::Full => String::new(),
            search::halving::Fidelity::Halving { eta, rungs } => {
                format!(", successive halving eta {eta} rungs {rungs}")
            }
        };
        format!(
            "{} strategy, {} evaluator{fidelity}, target {}, seed {}, data {}{table}",
            strategy.unwrap_or_else(|| "?".into()),
            c.evaluator,
            c.reward.target,
            c.seed,
            c.data
        )
    }
}

fn read_json_if_present<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => parse_json(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Wall time recorded by the strategy checkpoint of an unfinished run.
fn checkpoint_elapsed(dir: &Path) -> Result<Option<f64>, String> {
    let ckpt = read_json_if_present::<serde_json::Value>(&dir.join("strategy.json"))?;
    Ok(ckpt.and_then(|v| v["elapsed_seconds"].as_f64()))
}

/// First start to last finish in the journal: the best estimate when nothing else recorded it.
fn journal_span(records: &[TrialRecord]) -> f64 {
    let start = records.iter().map(|r| r.started_at).fold(f64::INFINITY, f64::min);
    let end = records.iter().map(|r| r.finished_at).fold(f64::NEG_INFINITY, f64::max);
    if end > start {
        end - start
    } else {
        0.0
    }
}
