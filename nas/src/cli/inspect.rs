//! `nas inspect`: per-block structure and exact costs of one architecture, or the summary of a
//! search run folder (budget used, best trials, Pareto front), as a table or JSON.

use std::path::Path;

use clap::Args;
use serde::Serialize;
use space::{cost, load_arch, Arch, Cost, Stopwatch};

use crate::report::{duration, RunFolder};
use search::results::TrialRecord;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// An architecture file, a preset name (mixnet-s, mixnet-m, mixnet-l, mobilenetv2, mnasnet-a1), nas-bench-macro:CODE or a run folder.
    pub arch: String,
    /// Input resolution (square) at which costs are counted [default: the network's own
    /// (32 for nas-bench-macro), else 224].
    #[arg(long, value_name = "PX")]
    pub resolution: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// For a run folder: how many of the best trials to list.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub top: usize,
}

pub fn exec(args: InspectArgs) -> Result<i32, String> {
    if Path::new(&args.arch).is_dir() {
        return inspect_run(Path::new(&args.arch), &args);
    }
    let arch = load_arch(&args.arch).map_err(|e| e.to_string())?;
    let resolution = args.resolution.unwrap_or(arch.default_resolution());
    let text = match args.json {
        true => serde_json::to_string_pretty(&report(&arch, resolution)).expect("a report serialises"),
        false => table(&arch, resolution),
    };
    super::print(&text)
}

/// Summary of a search run folder: budget used, best trials and the Pareto front.
fn inspect_run(dir: &Path, args: &InspectArgs) -> Result<i32, String> {
    if crate::report::detect(dir)? != crate::report::FolderKind::Search {
        return Err(format!("{}: a training folder, not a search run (hint: nas report {0})", dir.display()));
    }
    let run = RunFolder::load(dir)?;
    let text = match args.json {
        true => serde_json::to_string_pretty(&run_json(&run, args.top)).expect("a run summary serialises"),
        false => run_table(&run, args.top),
    };
    super::print(&text)
}

#[derive(Serialize)]
struct TrialRow {
    trial: u64,
    reward: f64,
    /// The evaluator's number; the run's `metric` says what it is.
    score: f64,
    latency_ms: f64,
    latency_source: String,
    macs: u64,
    params: u64,
    arch: Option<String>,
}

fn trial_row(r: &TrialRecord) -> TrialRow {
    let e = r.evaluation.as_ref().expect("evaluated trials have an evaluation");
    TrialRow {
        trial: r.id,
        reward: r.reward,
        score: e.score,
        latency_ms: e.latency_ms,
        latency_source: e.latency_source.clone(),
        macs: e.macs,
        params: e.params,
        arch: r.arch.as_ref().and_then(|a| a.name.clone()),
    }
}

/// Failed trials with the reason each failed (a crash, max_deliver reached, ...).
fn failures(run: &RunFolder) -> Vec<(u64, &str)> {
    let failed = run.records.iter().filter(|r| r.status == search::results::Status::Failed);
    failed.map(|r| (r.id, r.error.as_deref().unwrap_or("no reason recorded"))).collect()
}

fn run_json(run: &RunFolder, top: usize) -> serde_json::Value {
    let failed: Vec<_> =
        failures(run).into_iter().map(|(trial, error)| serde_json::json!({"trial": trial, "error": error})).collect();
    serde_json::json!({
        "failed": failed,
        "run": run.dir.display().to_string(),
        "setup": run.setup_line(),
        "metric": run.metric(),
        "budget": run.budget(),
        "best": run.top(top).into_iter().map(trial_row).collect::<Vec<_>>(),
        "pareto": run.pareto().into_iter().map(trial_row).collect::<Vec<_>>(),
        "stopwatch": best_stopwatch(run),
    })
}

fn run_table(run: &RunFolder, top: usize) -> String {
    let b = run.budget();
    let state = if b.finished { "finished" } else { "not finished" };
    let time_budget = b.time_budget_seconds.map_or(String::new(), |t| format!(" of {}", duration(t)));
    let mut out = format!("run {}: {}\n", run.dir.display(), run.setup_line());
    out += &format!(
        "budget: {} of {} trials ({} evaluated, {} cached, {} failed, {} invalid), wall {}{time_budget}, {state}\n",
        b.trials_done,
        b.trials_planned,
        b.evaluated,
        b.cached,
        b.failed,
        b.invalid,
        duration(b.wall_seconds)
    );
    let metric = run.metric();
    let rows = |records: Vec<&TrialRecord>| {
        let mut text = format!(
            "{:>6} {:>8} {:>9} {:>10} {:>12} {:>11}  {}\n",
            "trial",
            "reward",
            metric.name(),
            "latency",
            "MACs",
            "params",
            "arch"
        );
        for r in records.into_iter().map(trial_row) {
            text += &format!(
                "{:>6} {:>8.4} {:>9.4} {:>8.1}ms {:>12} {:>11}  {}\n",
                r.trial,
                r.reward,
                r.score,
                r.latency_ms,
                thousands(r.macs),
                thousands(r.params),
                r.arch.unwrap_or_default()
            );
        }
        text
    };
    let best = run.top(top);
    out += &format!("\nbest {} trials by reward:\n", best.len());
    out += &rows(best);
    if let Some(watch) = best_stopwatch(run) {
        out += &format!("stopwatch, best.json at the end of the run: {}\n", watch.describe());
    }
    let front = run.pareto();
    out += &format!("\nPareto front ({metric} vs latency), {} trials:\n", front.len());
    out += &rows(front);
    let failed = failures(run);
    if !failed.is_empty() {
        out += &format!("\nfailed trials, {}:\n", failed.len());
        for (trial, error) in failed {
            out += &format!("{trial:>6}  {error}\n");
        }
    }
    out.trim_end().to_string()
}

#[derive(Serialize)]
struct Report {
    name: Option<String>,
    /// The network's NAS-Bench-Macro code, when it is one of the benchmark's.
    #[serde(skip_serializing_if = "Option::is_none")]
    nas_bench_macro: Option<String>,
    resolution: usize,
    classes: usize,
    blocks: Vec<BlockRow>,
    stem: Cost,
    head: Cost,
    classifier: Cost,
    params: u64,
    macs: u64,
    activations: u64,
    /// The end-of-run timing of a search's best network, beside its prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopwatch: Option<Stopwatch>,
}

#[derive(Serialize)]
struct BlockRow {
    index: usize,
    stride: usize,
    resolution_in: usize,
    resolution_out: usize,
    #[serde(rename = "in")]
    in_ch: usize,
    out: usize,
    kernels: Vec<usize>,
    expand: usize,
    expand_groups: usize,
    project_groups: usize,
    se: Option<f64>,
    act: space::Activation,
    /// Whether the residual add is actually applied.
    skip: bool,
    #[serde(flatten)]
    cost: Cost,
}

fn report(arch: &Arch, resolution: usize) -> Report {
    let c = cost(arch, resolution);
    let blocks = arch
        .blocks
        .iter()
        .zip(&c.blocks)
        .enumerate()
        .map(|(index, (b, bc))| BlockRow {
            index,
            stride: b.stride,
            resolution_in: bc.resolution_in,
            resolution_out: bc.resolution_out,
            in_ch: b.in_ch,
            out: b.out,
            kernels: b.kernels.clone(),
            expand: b.expand,
            expand_groups: b.expand_groups,
            project_groups: b.project_groups,
            se: b.se,
            act: b.act,
            skip: b.has_residual(),
            cost: bc.cost,
        })
        .collect();
    Report {
        name: arch.name.clone(),
        nas_bench_macro: space::family::nas_bench_macro_code(arch),
        resolution,
        classes: arch.classes,
        blocks,
        stem: c.stem,
        head: c.head,
        classifier: c.classifier,
        params: c.total.params,
        macs: c.total.macs,
        activations: c.total.activations,
        stopwatch: arch.provenance.as_ref().and_then(|p| p.stopwatch.clone()),
    }
}

/// 1234567 -> "1,234,567".
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn table(arch: &Arch, resolution: usize) -> String {
    let r = report(arch, resolution);
    let line = |cols: [&str; 10], c: &Cost| {
        let [a, b, res, ch, k, e, g, se, act, skip] = cols;
        format!(
            "{a:<6}{b:>2}  {res:<9} {ch:<10} {k:<11} {e:>3}  {g:<5} {se:<5} {act:<6}{skip:<5}{:>11} {:>13}\n",
            thousands(c.params),
            thousands(c.macs)
        )
    };
    let name = arch.name.as_deref().unwrap_or("(unnamed)");
    let mut out = format!("{name} at {resolution}x{resolution}, {} classes\n", arch.classes);
    if let Some(code) = &r.nas_bench_macro {
        out += &format!("NAS-Bench-Macro code {code}\n");
    }
    out += &format!(
        "{:<6}{:>2}  {:<9} {:<10} {:<11} {:>3}  {:<5} {:<5} {:<6}{:<5}{:>11} {:>13}\n",
        "#", "s", "res", "channels", "kernels", "e", "ga/gp", "se", "act", "skip", "params", "MACs"
    );
    let s = &arch.stem;
    let after_stem = r.blocks.first().map_or(resolution / s.stride, |b| b.resolution_in);
    let (st, res, ch) = (s.stride.to_string(), format!("{resolution}>{after_stem}"), format!("{}>{}", s.in_ch, s.out));
    out += &line(["stem", &st, &res, &ch, &s.kernel.to_string(), "-", "-", "-", "relu", "-"], &r.stem);
    for b in &r.blocks {
        let kernels = match b.kernels.is_empty() {
            true => "1x1 conv".to_string(),
            false => b.kernels.iter().map(|k| k.to_string()).collect::<Vec<_>>().join("."),
        };
        let owned = [
            b.index.to_string(),
            b.stride.to_string(),
            format!("{}>{}", b.resolution_in, b.resolution_out),
            format!("{}>{}", b.in_ch, b.out),
            kernels,
            b.expand.to_string(),
            format!("{}/{}", b.expand_groups, b.project_groups),
            b.se.map_or("-".to_string(), |x| x.to_string()),
            if b.act == space::Activation::Relu { "relu" } else { "swish" }.to_string(),
            if b.skip { "yes" } else { "-" }.to_string(),
        ];
        out += &line(std::array::from_fn(|i| owned[i].as_str()), &b.cost);
    }
    let last = r.blocks.last().map_or(after_stem, |b| b.resolution_out);
    let (res, ch) = (format!("{last}>{last}"), format!("{}>{}", arch.last_channels(), arch.head.width));
    out += &line(["head", "1", &res, &ch, "1", "-", "-", "-", "relu", "-"], &r.head);
    let ch = format!("{}>{}", arch.head.width, arch.classes);
    out += &line(["fc", "-", "1>1", &ch, "-", "-", "-", "-", "-", "-"], &r.classifier);
    out += &format!(
        "total: {} params, {} MACs, {} activations\n",
        thousands(r.params),
        thousands(r.macs),
        thousands(r.activations)
    );
    if let Some(watch) = &r.stopwatch {
        out += &format!("stopwatch at the end of its search: {}\n", watch.describe());
    }
    out
}

/// The stopwatch check recorded in a run folder's best.json, if any.
fn best_stopwatch(run: &RunFolder) -> Option<Stopwatch> {
    let best = run.dir.join("best.json");
    load_arch(&best.display().to_string()).ok()?.provenance?.stopwatch
}
