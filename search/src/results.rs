//! The run folder: the append-only trial journal (`trials.jsonl`, the source of truth), the
//! `started.jsonl` log, atomic writes, and the reports derived from the journal (`best.json`,
//! `pareto.json`, `summary.json`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::reward::{rank, Reward};
use crate::setup::ValueKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Same choices as an earlier trial, whose result it reuses.
    Cached,
    /// The choices did not decode into a valid architecture.
    Invalid,
    /// The evaluation failed (error, panic, NaN).
    Failed,
}

/// One finished trial, one line of `trials.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub id: u64,
    pub batch: u64,
    pub choices: Vec<usize>,
    pub status: Status,
    pub reward: f64,
    pub seed: u64,
    /// The successive-halving rung this evaluation was made at (0: the first, and the only one
    /// at full fidelity).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rung: usize,
    /// The trial at the rung below that promoted this candidate here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<crate::evaluate::Evaluation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<space::Arch>,
    /// Unix seconds.
    pub started_at: f64,
    pub finished_at: f64,
}

impl TrialRecord {
    /// The evaluation's score (an accuracy where the run's [`ValueKind`] says so).
    pub fn score(&self) -> Option<f64> {
        self.evaluation.as_ref().map(|e| e.score)
    }

    pub fn latency_ms(&self) -> Option<f64> {
        self.evaluation.as_ref().map(|e| e.latency_ms)
    }

    /// The outcome in one line for a log: reward, score (named by `kind`) and latency, or why
    /// it has none, then the wall time.
    pub fn outcome_line(&self, kind: ValueKind) -> String {
        let outcome = match (&self.status, &self.evaluation) {
            (Status::Cached, _) => {
                format!("cached from trial {}, reward {:.4}", self.cached_from.unwrap_or(self.id), self.reward)
            }
            (Status::Ok, Some(e)) => {
                format!("reward {:.4} {kind} {:.4} latency {:.1}ms", self.reward, e.score, e.latency_ms)
            }
            (status, _) => {
                let why = self.error.as_deref().unwrap_or("no evaluation");
                format!("{}: {why}", format!("{status:?}").to_lowercase())
            }
        };
        format!("{outcome} ({:.1}s)", (self.finished_at - self.started_at).max(0.0))
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Appends one JSON line and makes it durable (flush + fsync) before returning.
pub fn append_line<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let mut line = serde_json::to_string(value).map_err(|e| e.to_string())?;
    line.push('\n');
    let mut f =
        OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    drop_torn_tail(path, &f).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.flush())
        .and_then(|_| f.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Cuts a last line without its newline (a kill mid-write), which the next line would
/// otherwise extend into one unreadable line in the middle of the file.
fn drop_torn_tail(path: &Path, f: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        fs::File::open(path)?.read_exact_at(&mut last, len - 1)?;
    }
    if last[0] != b'\n' {
        let bytes = fs::read(path)?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        f.set_len(keep as u64)?;
    }
    Ok(())
}

/// Reads a JSON-lines file; a torn last line (a kill mid-write) is ignored, a torn line
/// elsewhere is an error.
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(format!("{}: line {}: {e}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// Writes the settings `value` to `path`, or checks that the ones there are the same: a folder
/// keeps one configuration, so a resumed run never mixes results made differently. The error
/// names the first setting that differs.
pub fn write_or_check<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let Ok(text) = fs::read_to_string(path) else {
        return write_json(path, value);
    };
    let old: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a settings file: {e}", path.display()))?;
    let new = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let (old, new) = (old.as_object().cloned().unwrap_or_default(), new.as_object().cloned().unwrap_or_default());
    match new.iter().find(|(k, v)| old.get(*k) != Some(v)) {
        None => Ok(()),
        Some((field, value)) => Err(format!(
            "{}: {field}: this folder was run with {}, not {value}; resume with the same settings or use another --out",
            path.display(),
            old.get(field).map_or("nothing".to_string(), |v| v.to_string())
        )),
    }
}

/// Writes a file so that readers see the old or the new content, never a mix (temp file,
/// fsync, rename, fsync of the folder); the error is one line naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    evaluator::checkpoint::write_atomic(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads and parses a JSON file; the error is one line naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_json(path, &bytes)
}

/// Parses `bytes`, read from `path`, as JSON; the error is one line naming the file.
pub fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// The trial a search returns: among evaluated trials at the highest rung (a score after less
/// training never beats one after more), those that meet the reward's target first, as
/// constrained optimisers (Optuna's `constraints_func`) rank feasible above infeasible; then the
/// highest reward (a NaN reward lowest, see [`rank`]); earliest id on ties. A soft reward can
/// rate a network over the target above every one within it; the user asked for the target, so
/// that network is returned only when no trial meets it.
pub fn best<'a>(records: &'a [TrialRecord], reward: &Reward) -> Option<&'a TrialRecord> {
    let key = |r: &TrialRecord| (r.rung, meets_target(r, reward));
    let at_least = |b: &TrialRecord, r: &TrialRecord| key(b).cmp(&key(r)).then(rank(b.reward, r.reward)).is_ge();
    records.iter().filter(|r| r.evaluation.is_some() && r.arch.is_some()).fold(None, |best: Option<&TrialRecord>, r| {
        match best {
            Some(b) if at_least(b, r) => Some(b),
            _ => Some(r),
        }
    })
}

/// Whether an evaluated trial's cost is within the reward's target (false without an evaluation).
pub fn meets_target(r: &TrialRecord, reward: &Reward) -> bool {
    r.evaluation.as_ref().is_some_and(|e| reward.feasible(reward.target.cost_of(e.latency_ms, e.macs, e.params)))
}

/// Evaluated, uncached trials not dominated in (higher score, lower latency), by latency; only
/// those at the highest rung evaluated, so that scores after equal training compete. A NaN
/// score or latency counts as the worst (see [`rank`]).
pub fn pareto(records: &[TrialRecord]) -> Vec<&TrialRecord> {
    let evaluated = || records.iter().filter(|r| r.status == Status::Ok && r.evaluation.is_some());
    let top = evaluated().map(|r| r.rung).max().unwrap_or(0);
    let done: Vec<&TrialRecord> = evaluated().filter(|r| r.rung == top).collect();
    // Higher is better in both: latency ranks negated.
    let point = |r: &TrialRecord| (r.score().unwrap(), -r.latency_ms().unwrap());
    let dominated = |r: &TrialRecord| {
        let (a, l) = point(r);
        done.iter().any(|o| {
            let (oa, ol) = point(o);
            let (score, speed) = (rank(oa, a), rank(ol, l));
            score.is_ge() && speed.is_ge() && (score.is_gt() || speed.is_gt())
        })
    };
    let mut front: Vec<&TrialRecord> = done.iter().copied().filter(|r| !dominated(r)).collect();
    front.sort_by(|a, b| rank(point(b).1, point(a).1).then(a.id.cmp(&b.id)));
    front
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub trials: usize,
    pub failed: usize,
    pub invalid: usize,
    pub cached: usize,
    pub best_trial: Option<u64>,
    pub best_reward: Option<f64>,
    /// What the scores are (absent in summaries written before it was recorded).
    #[serde(default)]
    pub metric: Option<ValueKind>,
    #[serde(alias = "best_accuracy")]
    pub best_score: Option<f64>,
    pub best_latency_ms: Option<f64>,
    pub best_latency_source: Option<String>,
    /// Whether the best trial meets the target; false means no trial did.
    #[serde(default)]
    pub best_meets_target: Option<bool>,
    pub wall_seconds: f64,
}

pub fn summarise(records: &[TrialRecord], reward: &Reward, metric: ValueKind, wall_seconds: f64) -> Summary {
    let count = |s: Status| records.iter().filter(|r| r.status == s).count();
    let b = best(records, reward);
    Summary {
        trials: records.len(),
        failed: count(Status::Failed),
        invalid: count(Status::Invalid),
        cached: count(Status::Cached),
        best_trial: b.map(|r| r.id),
        best_reward: b.map(|r| r.reward),
        metric: Some(metric),
        best_score: b.and_then(|r| r.score()),
        best_latency_ms: b.and_then(|r| r.latency_ms()),
        best_latency_source: b.and_then(|r| r.evaluation.as_ref().map(|e| e.latency_source.clone())),
        best_meets_target: b.map(|r| meets_target(r, reward)),
        wall_seconds,
    }
}

/// Writes best.json (a loadable Arch with provenance), pareto.json and summary.json.
pub fn write_reports(
    dir: &Path,
    run: &str,
    records: &[TrialRecord],
    reward: &Reward,
    metric: ValueKind,
    wall_seconds: f64,
) -> Result<Summary, String> {
    if let Some(b) = best(records, reward) {
        let e = b.evaluation.as_ref().expect("best has an evaluation");
        let mut arch = b.arch.clone().expect("best has an arch");
        arch.provenance = Some(space::Provenance {
            run: Some(run.to_string()),
            trial: Some(b.id),
            seed: Some(b.seed),
            reward: Some(b.reward),
            metric: Some(metric.name().to_string()),
            score: Some(e.score),
            latency_ms: Some(e.latency_ms),
            latency_source: Some(e.latency_source.clone()),
            stopwatch: None,
        });
        write_atomic(&dir.join("best.json"), (arch.to_json() + "\n").as_bytes())?;
    }
    let front: Vec<serde_json::Value> = pareto(records)
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "choices": r.choices, "score": r.score(), "latency_ms": r.latency_ms(), "reward": r.reward}))
        .collect();
    write_json(&dir.join("pareto.json"), &front)?;
    let summary = summarise(records, reward, metric, wall_seconds);
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status, evaluation: Option<crate::evaluate::Evaluation>, error: Option<&str>) -> TrialRecord {
        TrialRecord {
            id: 3,
            batch: 0,
            choices: vec![],
            status,
            reward: 0.61494,
            seed: 0,
            rung: 0,
            promoted_from: None,
            cached_from: None,
            error: error.map(String::from),
            evaluation,
            arch: None,
            started_at: 100.0,
            finished_at: 112.34,
        }
    }

    #[test]
    fn the_best_is_at_the_highest_rung_whatever_the_lower_rungs_scored() {
        let e = crate::evaluate::Evaluation {
            score: 0.5,
            latency_ms: 8.0,
            latency_source: "surrogate".into(),
            macs: 1,
            params: 1,
            train_seconds: 0.0,
            details: Default::default(),
        };
        let at = |id, rung, reward, latency_ms| TrialRecord {
            id,
            rung,
            reward,
            arch: Some(space::presets::mixnet_s()),
            evaluation: Some(crate::evaluate::Evaluation { latency_ms, ..e.clone() }),
            ..record(Status::Ok, None, None)
        };
        let records =
            [at(0, 0, 0.9, 1.0), at(1, 1, 0.4, 5.0), at(2, 2, 0.3, 9.0), at(3, 2, 0.3, 2.0), at(4, 0, 0.2, 0.5)];
        let within = hard_at(10.0);
        assert_eq!(best(&records, &within).map(|r| r.id), Some(2), "rung 2 first, then reward, then the lower id");
        let front: Vec<u64> = pareto(&records).iter().map(|r| r.id).collect();
        assert_eq!(front, vec![3], "the front compares top-rung trials only");
        assert_eq!(best(&records[..2], &within).map(|r| r.id), Some(1));
        assert_eq!(best(&records, &hard_at(5.0)).map(|r| r.id), Some(3), "within the target before the lower id");
    }

    fn hard_at(ms: f64) -> Reward {
        Reward::hard(crate::reward::Target::Latency(crate::reward::LatencyBudget::from_ms(ms).unwrap()))
    }

    #[test]
    fn a_network_over_the_target_is_returned_only_when_none_meets_it() {
        let e = crate::evaluate::Evaluation {
            score: 0.9,
            latency_ms: 0.0,
            latency_source: "table".into(),
            macs: 1,
            params: 1,
            train_seconds: 0.0,
            details: Default::default(),
        };
        let at = |id, reward, latency_ms| TrialRecord {
            id,
            reward,
            arch: Some(space::presets::mixnet_s()),
            evaluation: Some(crate::evaluate::Evaluation { latency_ms, ..e.clone() }),
            ..record(Status::Ok, None, None)
        };
        // A soft reward rates the bigger network higher even 1.8x over the target.
        let soft = Reward::soft(crate::reward::Target::Latency(crate::reward::LatencyBudget::from_ms(10.0).unwrap()));
        let records = [at(0, 0.95, 18.0), at(1, 0.90, 9.5), at(2, 0.85, 7.0)];
        assert_eq!(best(&records, &soft).map(|r| r.id), Some(1));
        let summary = summarise(&records, &soft, ValueKind::Surrogate, 1.0);
        assert_eq!((summary.best_trial, summary.best_meets_target), (Some(1), Some(true)));
        let over = summarise(&records[..1], &soft, ValueKind::Surrogate, 1.0);
        assert_eq!(
            (over.best_trial, over.best_meets_target),
            (Some(0), Some(false)),
            "none meets it: the best over it"
        );
        let macs = Reward::hard(crate::reward::Target::Macs(1));
        assert!(meets_target(&records[0], &macs), "a MACs target compares MACs, not latency");
    }

    #[test]
    fn a_nan_score_or_latency_ranks_last_and_never_panics() {
        let e = crate::evaluate::Evaluation {
            score: 0.5,
            latency_ms: 4.0,
            latency_source: "surrogate".into(),
            macs: 1,
            params: 1,
            train_seconds: 0.0,
            details: Default::default(),
        };
        let at = |id, score: f64, latency_ms| TrialRecord {
            id,
            reward: score,
            arch: Some(space::presets::mixnet_s()),
            evaluation: Some(crate::evaluate::Evaluation { score, latency_ms, ..e.clone() }),
            ..record(Status::Ok, None, None)
        };
        let within = hard_at(10.0);
        // NaN compares false both ways, so before `rank` a later NaN replaced the best so far.
        let records = [at(0, 0.4, 5.0), at(1, f64::NAN, 5.0), at(2, 0.3, 2.0)];
        assert_eq!(best(&records, &within).map(|r| r.id), Some(0));
        assert_eq!(best(&records[1..2], &within).map(|r| r.id), Some(1), "alone, it is still the only one");
        let front: Vec<u64> = pareto(&records).iter().map(|r| r.id).collect();
        assert_eq!(front, vec![2, 0], "trial 0 dominates the NaN score at equal latency");
        let slow = [at(0, 0.4, f64::NAN), at(1, 0.4, 3.0), at(2, 0.9, f64::NAN)];
        let front: Vec<u64> = pareto(&slow).iter().map(|r| r.id).collect();
        assert_eq!(front, vec![1, 2], "a NaN latency is the slowest");
    }

    #[test]
    fn outcome_lines_say_the_result_or_why_there_is_none() {
        let e = crate::evaluate::Evaluation {
            score: 0.52674,
            latency_ms: 8.23,
            latency_source: "surrogate".into(),
            macs: 1,
            params: 1,
            train_seconds: 0.0,
            details: Default::default(),
        };
        let ok = record(Status::Ok, Some(e), None);
        assert_eq!(ok.outcome_line(ValueKind::Score), "reward 0.6149 score 0.5267 latency 8.2ms (12.3s)");
        assert_eq!(ok.outcome_line(ValueKind::Accuracy), "reward 0.6149 accuracy 0.5267 latency 8.2ms (12.3s)");
        let failed = record(Status::Failed, None, Some("loss became NaN"));
        assert_eq!(failed.outcome_line(ValueKind::Score), "failed: loss became NaN (12.3s)");
    }

    /// Run folders written before scores had a name of their own called every score
    /// `val_accuracy` (journal) or `best_accuracy` (summary); they read as scores.
    #[test]
    fn old_journal_lines_and_summaries_still_read() {
        let line = r#"{"id":7,"batch":0,"choices":[1,2],"status":"ok","reward":0.4,"seed":9,"evaluation":{"val_accuracy":0.6125,"latency_ms":3.5,"latency_source":"predicted","macs":10,"params":20,"train_seconds":0.8,"details":{"naswot":1402.5}},"started_at":1.0,"finished_at":2.0}"#;
        let old: TrialRecord = serde_json::from_str(line).unwrap();
        assert_eq!((old.score(), old.latency_ms()), (Some(0.6125), Some(3.5)));
        let written = serde_json::to_value(&old).unwrap();
        assert_eq!(written["evaluation"]["score"], 0.6125);
        assert!(written["evaluation"].get("val_accuracy").is_none(), "{written}");
        let summary = r#"{"trials":3,"failed":0,"invalid":0,"cached":0,"best_trial":1,"best_reward":0.4,"best_accuracy":0.6125,"best_latency_ms":3.5,"best_latency_source":"predicted","wall_seconds":1.0}"#;
        let old: Summary = serde_json::from_str(summary).unwrap();
        assert_eq!((old.best_score, old.metric), (Some(0.6125), None));
    }
}
