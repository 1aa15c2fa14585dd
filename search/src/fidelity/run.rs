//! One `nas fidelity` run: a seeded sample of the truth file's networks, each scored by an
//! evaluator, and the rank agreement of those scores (and of the counting baselines) with the
//! truth. The folder is `fidelity.json` (the settings, checked on resume), `rows.jsonl` (one
//! fsynced line per scored network, the source of truth, so a killed run resumes losing at most
//! the network it was scoring) and `results.json` (rows and statistics, rewritten atomically).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::report::{rank_report, RankReport};
use super::truth::Truth;
use crate::evaluate::{TrialEvaluator, TrialSpec};
use crate::results::{append_line, read_lines, write_json, write_or_check};
use crate::setup::EvaluatorKind;
use evaluator::rng::SplitMix64;

pub const FIDELITY_FORMAT: &str = "mixnas.fidelity/1";

/// Evaluation details that are losses, reported as scores of their own where every row has one:
/// the proxy's last-epoch and epoch-averaged training loss, a supernet's validation loss.
pub const LOSS_DETAILS: [&str; 3] = ["train_loss", "mean_train_loss", "val_loss"];

/// Everything that decides a run's rows: a folder keeps one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FidelityConfig {
    pub format: String,
    /// The family the codes name (`nas-bench-macro`).
    pub space: String,
    pub truth: String,
    pub field: String,
    pub evaluator: EvaluatorKind,
    pub samples: usize,
    pub seed: u64,
    /// The proxy's data (unused by the table and surrogate evaluators).
    pub data: String,
    /// The proxy's training and latency settings.
    pub proxy: crate::proxy::ProxySettings,
    pub threads: usize,
}

/// One scored network: what the evaluator said, what full training measured, what it costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub code: String,
    /// The evaluator's number in [0, 1] (`Evaluation::score`: an accuracy for some evaluators).
    pub score: f64,
    /// The truth file's field (NAS-Bench-Macro: mean test accuracy in %, 50 epochs).
    pub truth: f64,
    pub params: u64,
    pub macs: u64,
    pub latency_ms: f64,
    pub latency_source: String,
    /// Wall-clock and process CPU seconds the evaluation took (latency children not counted).
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    /// The evaluator's extras (training loss, images per second).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Mean cost of scoring one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerCandidate {
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
}

/// `results.json`: the rows and every statistic computed from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FidelityResults {
    pub format: String,
    pub config: FidelityConfig,
    pub rows: Vec<Row>,
    /// The evaluator's scores against the truth.
    pub evaluator: RankReport,
    /// The evaluator's losses as scores (lower ranks higher), each where every row has it: the
    /// same evaluations read another way. Keys are [`LOSS_DETAILS`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub losses: BTreeMap<String, RankReport>,
    /// Counting baselines against the truth: `params`, `macs`, `latency_ms`.
    pub baselines: BTreeMap<String, RankReport>,
    pub per_candidate: PerCandidate,
}

/// Process CPU seconds so far (user + system, from `/proc/self/stat` in USER_HZ = 100 ticks);
/// NaN where that file is unreadable.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return f64::NAN };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

/// Scores the sample `config` asks for into `dir` (resuming what is there) and writes
/// `results.json`. `progress(done, total, row)` follows every newly scored network.
pub fn run(
    config: &FidelityConfig,
    truth: &Truth,
    evaluator: &dyn TrialEvaluator,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize, &Row),
) -> Result<FidelityResults, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_or_check(&dir.join("fidelity.json"), config)?;
    let codes = truth.sample(config.samples, config.seed)?;
    let journal = dir.join("rows.jsonl");
    let mut rows: Vec<Row> = read_lines(&journal)?;
    if let Some(stray) = rows.iter().find(|r| !codes.contains(&r.code)) {
        return Err(format!("{}: code {} is not in this run's sample", journal.display(), stray.code));
    }
    for (i, code) in codes.iter().enumerate() {
        if rows.iter().any(|r| &r.code == code) {
            continue;
        }
        let row = score(code, i as u64, config, truth, evaluator)?;
        append_line(&journal, &row)?;
        rows.push(row);
        progress(rows.len(), codes.len(), rows.last().expect("just pushed"));
    }
    rows.sort_by_key(|r| codes.iter().position(|c| c == &r.code));
    let results = summarise(config.clone(), rows);
    write_json(&dir.join("results.json"), &results)?;
    Ok(results)
}

fn score(
    code: &str,
    index: u64,
    config: &FidelityConfig,
    truth: &Truth,
    evaluator: &dyn TrialEvaluator,
) -> Result<Row, String> {
    let arch = space::family::nas_bench_macro(code)?;
    let seed = SplitMix64::derive(config.seed, index).next_u64();
    let spec = TrialSpec { id: index, arch, choices: Vec::new(), seed, threads: config.threads, epochs: None };
    let (wall, cpu) = (Instant::now(), process_cpu_seconds());
    let e = evaluator.evaluate(&spec).map_err(|e| format!("scoring {code}: {e}"))?;
    Ok(Row {
        code: code.to_string(),
        score: e.score,
        truth: truth.get(code)?,
        params: e.params,
        macs: e.macs,
        latency_ms: e.latency_ms,
        latency_source: e.latency_source,
        wall_seconds: wall.elapsed().as_secs_f64(),
        cpu_seconds: process_cpu_seconds() - cpu,
        details: e.details,
    })
}

/// The statistics of `rows` (bootstrap seeded by the run's seed).
pub fn summarise(config: FidelityConfig, rows: Vec<Row>) -> FidelityResults {
    let column = |f: fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let (truth, macs) = (column(|r| r.truth), column(|r| r.macs as f64));
    let report = |scores: &[f64]| rank_report(scores, &truth, &macs, config.seed);
    let baselines = [
        ("params", column(|r| r.params as f64)),
        ("macs", macs.clone()),
        // Ranked by the count itself, larger first, like params and MACs.
        ("latency_ms", column(|r| r.latency_ms)),
    ];
    let loss = |key: &str| -> Option<Vec<f64>> {
        rows.iter().map(|r| r.details.get(key).and_then(|v| v.as_f64()).map(|l| -l)).collect()
    };
    let losses = LOSS_DETAILS
        .iter()
        .filter_map(|&key| loss(key).filter(|l| !l.is_empty()).map(|l| (key.to_string(), report(&l))))
        .collect();
    let n = rows.len().max(1) as f64;
    let per_candidate = PerCandidate {
        wall_seconds: rows.iter().map(|r| r.wall_seconds).sum::<f64>() / n,
        cpu_seconds: rows.iter().map(|r| r.cpu_seconds).sum::<f64>() / n,
    };
    FidelityResults {
        format: FIDELITY_FORMAT.to_string(),
        evaluator: report(&column(|r| r.score)),
        losses,
        baselines: baselines.into_iter().map(|(name, scores)| (name.to_string(), report(&scores))).collect(),
        per_candidate,
        config,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize, details: serde_json::Value) -> Row {
        Row {
            code: format!("{i:08}"),
            score: 0.5,
            truth: i as f64,
            params: 1 + i as u64,
            macs: 1 + (i as u64 * 7) % 20,
            latency_ms: 1.0,
            latency_source: "table".into(),
            wall_seconds: 1.0,
            cpu_seconds: 2.0,
            details: details.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn each_loss_every_row_has_is_a_score_where_lower_ranks_higher() {
        let config = FidelityConfig {
            format: FIDELITY_FORMAT.into(),
            space: "nas-bench-macro".into(),
            truth: "truth.json".into(),
            field: "mean_acc".into(),
            evaluator: EvaluatorKind::Surrogate,
            samples: 20,
            seed: 3,
            data: String::new(),
            proxy: crate::proxy::ProxySettings::default(),
            threads: 1,
        };
        // The better the truth, the lower the training loss; only the odd rows have a val loss.
        let rows = (0..20)
            .map(|i| {
                let loss = 2.0 - i as f64 / 20.0;
                let d = if i % 2 == 1 {
                    serde_json::json!({ "train_loss": loss, "mean_train_loss": 1.0 + i as f64, "val_loss": loss })
                } else {
                    serde_json::json!({ "train_loss": loss, "mean_train_loss": 1.0 + i as f64 })
                };
                row(i, d)
            })
            .collect();
        let r = summarise(config, rows);
        assert_eq!(r.losses.keys().collect::<Vec<_>>(), ["mean_train_loss", "train_loss"]);
        assert_eq!(r.losses["train_loss"].kendall_tau.value, 1.0);
        assert_eq!(r.losses["mean_train_loss"].kendall_tau.value, -1.0);
        assert_eq!(r.per_candidate.cpu_seconds, 2.0);
    }
}
