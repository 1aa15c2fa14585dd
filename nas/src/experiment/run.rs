//! Running an experiment folder: train every (variant, seed) not yet in `runs.jsonl`, obtain
//! each variant's latency at one thread (a `LatencyService`), then derive `results.json`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use evaluator::train::prepared::PreparedData;
use evaluator::train::proxy::{proxy_evaluate, ProxyConfig};

use super::journal::{self, ExperimentConfig, LatencyRecord, Results, RunRecord};
use super::Variant;
use evaluator::latency::{LatencyMethod, LatencyService, LatencySetting};
use search::results::{append_line, unix_now, write_json};

/// Trains the runs missing from `dir/runs.jsonl`, appending each as it finishes; returns how
/// many it trained. `scoring.val` is the split accuracy is measured on.
pub fn train_missing(
    dir: &Path,
    variants: &[Variant],
    seeds: &[u64],
    scoring: &PreparedData,
    proxy: &ProxyConfig,
) -> Result<usize, String> {
    let done: HashSet<(String, u64)> = journal::read_runs(dir)?.into_iter().map(|r| (r.variant, r.seed)).collect();
    let todo: Vec<(&Variant, u64)> = variants
        .iter()
        .flat_map(|v| seeds.iter().map(move |&s| (v, s)))
        .filter(|(v, s)| !done.contains(&(v.name.clone(), *s)))
        .collect();
    let skipped = variants.len() * seeds.len() - todo.len();
    if skipped > 0 {
        eprintln!("{skipped} runs already in {}; {} to train", dir.join("runs.jsonl").display(), todo.len());
    }
    for (i, (v, seed)) in todo.iter().enumerate() {
        let record = match proxy_evaluate(&v.arch, proxy, scoring, *seed) {
            Ok(r) => RunRecord {
                variant: v.name.clone(),
                seed: *seed,
                accuracy: Some(r.val_accuracy),
                error: None,
                train_seconds: r.train_seconds,
                images_per_s: r.images_per_s,
                finished_at: unix_now(),
            },
            Err(e) => RunRecord {
                variant: v.name.clone(),
                seed: *seed,
                accuracy: None,
                error: Some(e.to_string().lines().next().unwrap_or_default().to_string()),
                train_seconds: 0.0,
                images_per_s: 0.0,
                finished_at: unix_now(),
            },
        };
        append_line(&dir.join("runs.jsonl"), &record)?;
        let outcome = match (&record.accuracy, &record.error) {
            (Some(a), _) => format!("accuracy {a:.4} ({:.1}s, {:.0} img/s)", record.train_seconds, record.images_per_s),
            (None, e) => format!("FAILED: {}", e.as_deref().unwrap_or("")),
        };
        eprintln!("[{}/{}] {} seed {seed}: {outcome}", i + 1, todo.len(), v.name);
    }
    Ok(todo.len())
}

/// How latency is obtained (`method` `None`: not at all).
#[derive(Clone, Debug)]
pub struct LatencyPlan {
    pub method: Option<LatencyMethod>,
    pub resolution: usize,
    pub threads: usize,
    pub service: LatencyService,
}

/// Adds a `latency.jsonl` line for every variant that has none at this setting.
pub fn measure_missing_latency(dir: &Path, variants: &[Variant], plan: &LatencyPlan) -> Result<(), String> {
    let Some(method) = plan.method else { return Ok(()) };
    let known = journal::latest_latency(journal::read_latencies(dir)?);
    for v in variants {
        let have = known.get(&v.name).is_some_and(|r| (r.resolution, r.threads) == (plan.resolution, plan.threads));
        if !have {
            let setting = LatencySetting { method, threads: plan.threads, resolution: plan.resolution, table: None };
            let latency = plan.service.latency(&v.arch, &setting)?;
            let record = LatencyRecord {
                variant: v.name.clone(),
                ms: latency.ms,
                source: latency.source.as_str().to_string(),
                resolution: plan.resolution,
                threads: plan.threads,
            };
            append_line(&dir.join("latency.jsonl"), &record)?;
        }
    }
    Ok(())
}

pub fn variant_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("variants").join(format!("{name}.json"))
}

/// Derives `dir/results.json` from the folder's records.
pub fn write_results(
    dir: &Path,
    cfg: &ExperimentConfig,
    variants: &[Variant],
    accuracy_on: String,
    cost_resolution: usize,
) -> Result<Results, String> {
    let runs = journal::read_runs(dir)?;
    let latency = journal::latest_latency(journal::read_latencies(dir)?);
    let rows: Vec<_> =
        variants.iter().map(|v| journal::summarise(v, &runs, latency.get(&v.name), cost_resolution)).collect();
    let results = Results {
        experiment: cfg.experiment,
        data: cfg.data.clone(),
        subset: cfg.subset,
        epochs: cfg.epochs,
        resolution: cfg.resolution,
        accuracy_on,
        cost_resolution,
        base: cfg.base.name.clone().unwrap_or_default(),
        classes: cfg.base.classes,
        train_seconds: rows.iter().map(|r| r.train_seconds).sum(),
        variants: rows,
    };
    write_json(&dir.join("results.json"), &results)?;
    Ok(results)
}
