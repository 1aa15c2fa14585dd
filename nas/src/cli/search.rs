//! `nas search`: flags over `configs/search.json` (or `--config`) into a [`RunConfig`], then
//! the [`Runner`]. All checks happen before the run folder is created.

use std::path::{Path, PathBuf};

use clap::Args;

use evaluator::latency::{LatencyMethod, LatencyService, LatencySetting, Machine, SpeedNow, Table};
use search::evaluate::LocalPool;
use search::halving::Fidelity;
use search::reward::{LatencyBudget, Reward, Target};
use search::runner::{RunConfig, Runner};
use search::setup::{BuiltEvaluator, EvaluatorKind};
use search::strategy::StrategyKind;

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Latency target at 224x224, batch 1: 75ms, 0.075s or 75000us.
    #[arg(long, value_name = "TIME", help_heading = "Search options")]
    pub target_latency: Option<LatencyBudget>,
    /// soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1).
    #[arg(long, value_parser = ["soft", "hard"], help_heading = "Search options")]
    pub reward: Option<String>,
    /// Reward exponent while within the target (overrides --reward).
    #[arg(long, allow_hyphen_values = true, help_heading = "Search options")]
    pub alpha: Option<f64>,
    /// Reward exponent above the target (overrides --reward).
    #[arg(long, allow_hyphen_values = true, help_heading = "Search options")]
    pub beta: Option<f64>,
    /// reinforce, ppo, random or evolution.
    #[arg(long, help_heading = "Search options")]
    pub strategy: Option<StrategyKind>,
    #[arg(long, value_name = "N", help_heading = "Search options")]
    pub trials: Option<usize>,
    /// Wall-clock budget: 90s, 30m or 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Search options")]
    pub time: Option<f64>,
    #[arg(long, help_heading = "Search options")]
    pub seed: Option<u64>,
    /// A search-space file (default: the embedded MixNet space).
    #[arg(long, help_heading = "Search options")]
    pub space: Option<String>,
    /// full: each candidate trains proxy.epochs once. sh: successive halving. Each batch is a
    /// bracket (batch_size rounded up to a multiple of ETA^(RUNGS-1)) whose candidates train
    /// proxy.epochs/ETA^(RUNGS-1) epochs; the best 1/ETA of each rung train again from scratch
    /// with ETA times the epochs, up to proxy.epochs (so a multiple of ETA^(RUNGS-1)); the
    /// strategy learns each candidate's highest rung. --trials counts candidates: 9 make
    /// 9 + 3 + 1 evaluations at the defaults. The table, zero-cost and surrogate evaluators score
    /// every rung alike. In a config: "fidelity": {"kind": "sh", "eta": 3, "rungs": 3}.
    #[arg(long, value_parser = ["full", "sh"], help_heading = "Search options")]
    pub fidelity: Option<String>,
    /// With --fidelity sh: each rung keeps the best 1/ETA of its candidates [default: 3].
    #[arg(long, value_name = "ETA", help_heading = "Search options")]
    pub eta: Option<usize>,
    /// With --fidelity sh: rungs per bracket, the top one at proxy.epochs [default: 3].
    #[arg(long, value_name = "N", help_heading = "Search options")]
    pub rungs: Option<usize>,
    /// Parallel evaluations.
    #[arg(long, value_name = "W", help_heading = "Evaluation options")]
    pub workers: Option<usize>,
    /// CPU threads in total, shared by the workers.
    #[arg(long, value_name = "N", help_heading = "Evaluation options")]
    pub threads: Option<usize>,
    /// zero:naswot (the default: untrained NASWOT score on a batch of the data), zero:synflow,
    /// proxy (real training), table:FILE[:FIELD] (accuracy looked up in a NAS-Bench-Macro-style
    /// truth file, field mean_acc by default), supernet:DIR (weights inherited from `nas supernet
    /// train --out DIR` over this space, on its data) or surrogate (closed form, for testing).
    /// Zero-cost scores are standardised against 16 random networks of the space.
    #[arg(long, value_name = "SPEC", help_heading = "Evaluation options")]
    pub evaluator: Option<String>,
    /// Latency from this table file (built with `nas latency --build-table`, here or on the
    /// device searched for): its resolution and threads become the target's.
    #[arg(long, value_name = "FILE", help_heading = "Evaluation options")]
    pub latency_table: Option<PathBuf>,
    /// Proxy data: `default` or a data folder.
    #[arg(long, help_heading = "Evaluation options")]
    pub data: Option<String>,
    /// Evaluate on `nas worker` processes through this NATS JetStream server (nats://HOST:4222).
    #[arg(long, value_name = "URL", help_heading = "Distributed options")]
    pub broker: Option<String>,
    /// With --broker: a trial without an ack for this long goes to another worker (30s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", requires = "broker", help_heading = "Distributed options")]
    pub ack_wait: f64,
    /// With --broker: deliveries before a trial is recorded as failed.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..), requires = "broker", help_heading = "Distributed options")]
    pub max_deliver: i64,
    #[command(flatten)]
    pub auth: super::broker::AuthArgs,
    /// Run folder (default: results/run-<time>).
    #[arg(long, help_heading = "Output options")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "out", help_heading = "Output options")]
    pub resume: Option<PathBuf>,
    /// Defaults file [default: configs/search.json if present].
    #[arg(long, help_heading = "Output options")]
    pub config: Option<PathBuf>,
    /// No progress: neither the bar (on a terminal) nor the line per finished trial (otherwise).
    #[arg(long, help_heading = "Output options")]
    pub quiet: bool,
}

pub(crate) fn parse_duration(s: &str) -> Result<f64, String> {
    let bad = || format!("invalid duration `{s}` (hint: 90s, 30m or 2h)");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?);
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    n.parse::<f64>().ok().filter(|v| *v > 0.0).map(|v| v * scale).ok_or_else(bad)
}

fn base_config(args: &SearchArgs) -> Result<RunConfig, String> {
    if let Some(dir) = &args.resume {
        return Runner::read_config(dir);
    }
    defaults_file(args.config.as_deref())
}

/// The search defaults: `config`, else `configs/search.json` where present, else built in.
pub(crate) fn defaults_file(config: Option<&Path>) -> Result<RunConfig, String> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None if Path::new("configs/search.json").exists() => PathBuf::from("configs/search.json"),
        None => return Ok(RunConfig::default()),
    };
    search::results::read_json(&path)
}

fn apply_flags(mut c: RunConfig, a: &SearchArgs) -> Result<RunConfig, String> {
    if let Some(t) = a.target_latency {
        c.reward.target = Target::Latency(t);
    }
    match a.reward.as_deref() {
        Some("hard") => c.reward = Reward::hard(c.reward.target),
        Some(_) => c.reward = Reward::soft(c.reward.target),
        None => {}
    }
    c.reward.alpha = a.alpha.unwrap_or(c.reward.alpha);
    c.reward.beta = a.beta.unwrap_or(c.reward.beta);
    c.strategy.kind = a.strategy.unwrap_or(c.strategy.kind);
    c.trials = a.trials.unwrap_or(c.trials);
    c.time_seconds = a.time.or(c.time_seconds);
    c.seed = a.seed.unwrap_or(c.seed);
    c.fidelity = fidelity(c.fidelity, a)?;
    c.space = a.space.clone().unwrap_or(c.space);
    c.workers = a.workers.unwrap_or(c.workers).max(1);
    c.threads = a.threads.unwrap_or(c.threads).max(1);
    if let Some(name) = &a.evaluator {
        c.evaluator = absolute_table(name.parse()?)?;
    }
    c.data = a.data.clone().unwrap_or(c.data);
    if let Some(path) = &a.latency_table {
        c.proxy.latency = adopt_table(path)?;
    }
    Ok(c)
}

/// `--fidelity`, `--eta` and `--rungs` over the config's fidelity.
fn fidelity(config: Fidelity, a: &SearchArgs) -> Result<Fidelity, String> {
    let (eta, rungs) = match config {
        Fidelity::Halving { eta, rungs } => (eta, rungs),
        Fidelity::Full => (3, 3),
    };
    let halving = match a.fidelity.as_deref() {
        Some(kind) => kind == "sh",
        None => !config.is_full(),
    };
    match halving {
        true => Fidelity::halving(a.eta.unwrap_or(eta), a.rungs.unwrap_or(rungs)),
        false if a.eta.is_some() || a.rungs.is_some() => {
            Err("--eta and --rungs set successive halving: add --fidelity sh (or a \"fidelity\" block in the config)"
                .into())
        }
        false => Ok(Fidelity::Full),
    }
}

/// A table evaluator's file made absolute, so a resumed run and remote workers find it.
pub(crate) fn absolute_table(kind: EvaluatorKind) -> Result<EvaluatorKind, String> {
    match kind {
        EvaluatorKind::Table { file, field } => {
            let path = std::path::absolute(&file).map_err(|e| format!("--evaluator table:{file}: {e}"))?;
            Ok(EvaluatorKind::Table { file: path.display().to_string(), field })
        }
        other => Ok(other),
    }
}

/// The target setting for latency from the table at `path`: its absolute path (what the run
/// records), resolution and threads, predicted.
pub(crate) fn adopt_table(path: &Path) -> Result<LatencySetting, String> {
    let path = std::path::absolute(path).map_err(|e| format!("--latency-table {}: {e}", path.display()))?;
    if !path.is_file() {
        return Err(format!(
            "--latency-table {}: no such file (build one with nas latency --build-table --table FILE)",
            path.display()
        ));
    }
    let machine = Table::read(&path).map_err(|e| e.to_string())?.machine;
    let (resolution, threads, table) = (machine.resolution, machine.threads, Some(path));
    Ok(LatencySetting { method: LatencyMethod::Predict, resolution, threads, table })
}

/// Checks the run's table file, if it names one, and says whose latencies the trials get:
/// another device's table as it is, this machine's against this build's key.
fn announce_table(setting: &LatencySetting) -> Result<(), String> {
    let Some(path) = &setting.table else { return Ok(()) };
    if !path.exists() {
        eprintln!("latency: table {} (new: this machine's, filled as trials need it)", path.display());
        return Ok(());
    }
    let machine = match setting.device_table().map_err(|e| e.to_string())? {
        Some(device) => device.machine().clone(),
        None => {
            let here = Machine::with_threads(&setting.measure_config(), setting.threads);
            Table::load(path, &here).map_err(|e| e.to_string())?.machine
        }
    };
    eprintln!("latency: table {} ({})", path.display(), machine.describe());
    Ok(())
}

/// Checks the successive-halving settings and says in one line what a bracket does.
fn announce_halving(c: &RunConfig) -> Result<(), String> {
    let epochs = c.rung_epochs()?;
    let Fidelity::Halving { eta, .. } = c.fidelity else { return Ok(()) };
    let sizes: Vec<String> = c.fidelity.rung_sizes(c.batch()).iter().map(|n| n.to_string()).collect();
    let budget = match epochs.iter().map(|e| e.map(|e| e.to_string())).collect::<Option<Vec<_>>>() {
        Some(e) => format!("{} epochs", e.join(" / ")),
        None => format!("the {} evaluator scoring every rung alike", c.evaluator.name()),
    };
    eprintln!("successive halving: brackets of {} evaluations (best 1/{eta} promoted), {budget}", sizes.join(" -> "));
    Ok(())
}

pub(crate) fn load_space(c: &RunConfig) -> Result<::space::SearchSpace, String> {
    let s = ::space::SearchSpace::from_spec(&c.space).map_err(|e| e.to_string())?;
    Ok(match c.classes {
        Some(n) => s.with_classes(n),
        None => s,
    })
}

/// A zero-cost evaluator's scale from a reference sample of the space (kept by the run config,
/// so a resumed run and remote workers use the recorded one).
pub(crate) fn calibrate(
    c: &mut RunConfig,
    space: &::space::SearchSpace,
    latency: &LatencyService,
) -> Result<(), String> {
    if !matches!(c.evaluator, EvaluatorKind::Zero(_)) || c.proxy.zero_scale.is_some() {
        return Ok(());
    }
    evaluator::set_threads(c.threads);
    let reference = search::evaluate::reference_sample(space, c.seed)?;
    search::setup::calibrate(&c.evaluator, &c.data, &mut c.proxy, c.seed, latency, &reference)
}

/// The run's evaluator, built as the config says (its description logged).
pub(crate) fn evaluator(c: &RunConfig, latency: &LatencyService) -> Result<BuiltEvaluator, String> {
    // The evaluators that compute on this process's pool run at the asked thread count.
    if matches!(c.evaluator, EvaluatorKind::Proxy | EvaluatorKind::Zero(_)) {
        evaluator::set_threads(c.threads);
    }
    let built = c.evaluator.build(&c.data, &c.proxy, c.seed, latency)?;
    if let Some(line) = &built.description {
        eprintln!("{line}");
    }
    Ok(built)
}

/// Warns when no architecture of the space can meet the latency target, judged by this
/// machine's lookup table (the source of every trial's latency) on the space's fastest points.
/// The surrogate evaluator without a table has its own latency model and gets no warning.
fn warn_if_unreachable(c: &RunConfig, space: &::space::SearchSpace, latency: &LatencyService) -> Result<(), String> {
    let Target::Latency(t) = c.reward.target else { return Ok(()) };
    if c.evaluator == EvaluatorKind::Surrogate && c.proxy.latency.table.is_none() {
        return Ok(());
    }
    let setting = &c.proxy.latency;
    let fastest = search::proxy::fastest_in_space(space, setting, latency)?;
    if t.ms() < fastest {
        eprintln!(
            "nas: warning: target {t} is unreachable: the fastest architectures of the space take about {fastest:.1}ms here (lookup-table prediction at {}x{}, {} thread(s)); the search goes on and favours the fastest it finds",
            setting.resolution, setting.resolution, setting.threads
        );
    }
    Ok(())
}

/// Whether the run's latency is this machine's: not another device's table, nor the surrogate
/// evaluator's own latency model. Only then does timing here say anything about it.
fn times_this_machine(c: &RunConfig) -> bool {
    let setting = &c.proxy.latency;
    let surrogate_model = c.evaluator == EvaluatorKind::Surrogate && setting.table.is_none();
    !surrogate_model && !setting.device_table().is_ok_and(|d| d.is_some())
}

/// `nas latency` at the target's threads and resolution, as a child of this binary.
fn latency_child(setting: &LatencySetting) -> Result<std::process::Command, String> {
    let nas = std::env::current_exe().map_err(|e| format!("locating the nas binary: {e}"))?;
    let mut cmd = std::process::Command::new(nas);
    cmd.args(["latency", "--threads", &setting.threads.to_string(), "--resolution", &setting.resolution.to_string()]);
    Ok(cmd)
}

/// Says how fast the machine runs now against the table's nominal speed, which the rewards
/// use (stable across the run), and warns in one line when it is more than 15% off. Nothing
/// to say for measured latency, another device's table, or the surrogate's own latency model.
fn announce_speed(c: &RunConfig) -> Result<(), String> {
    let setting = &c.proxy.latency;
    if setting.method != LatencyMethod::Predict || !times_this_machine(c) {
        return Ok(());
    }
    let mut cmd = latency_child(setting)?;
    cmd.args(["--speed", "--json"]);
    if let Some(table) = &setting.table {
        cmd.arg("--table").arg(table);
    }
    let out = cmd.output().map_err(|e| format!("timing the speed reference: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("nas: ").to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("nas latency --speed: {e}"))?;
    let ms = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let readings = v["readings_now"].as_u64().unwrap_or(0) as usize;
    let now = SpeedNow { reference_ms: ms("reference_now_ms"), nominal_ms: ms("reference_nominal_ms"), readings };
    let factor = now.factor();
    eprintln!(
        "latency: rewards use nominal times (this machine at its fastest); speed factor now {factor:.2}: {}",
        now.describe()
    );
    if now.is_off() {
        eprintln!(
            "nas: warning: the machine runs {:.0}% off its fastest speed right now: rankings are unaffected, but a stopwatch now reads about {factor:.2}x the predicted latencies",
            100.0 * (factor - 1.0).abs()
        );
    }
    Ok(())
}

/// Times the best network at the end of the run, at the target setting, for a few seconds, and
/// records the check in best.json beside its prediction (nominal and now). Skipped where the
/// latency is another device's or the surrogate's own model: timing this machine says nothing
/// about either. A failed check is a warning: the run itself is done.
fn stopwatch(dir: &Path, setting: &LatencySetting, times_this_machine: bool) -> Result<(), String> {
    let best = dir.join("best.json");
    if !best.is_file() || !times_this_machine {
        return Ok(());
    }
    let mut cmd = latency_child(setting)?;
    cmd.arg("--arch").arg(&best).args(["--json", "--repeats", "10"]);
    match setting.method {
        LatencyMethod::Measure => cmd.arg("--measure"),
        LatencyMethod::Predict => {
            cmd.args(setting.table.iter().flat_map(|t| [std::ffi::OsStr::new("--table"), t.as_os_str()]))
        }
    };
    let out = cmd.output().map_err(|e| format!("stopwatch check: {e}"))?;
    if !out.status.success() {
        return Err(format!("stopwatch check: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("stopwatch check: {e}"))?;
    let (m, p) = (&v["measured"], &v["predicted"]);
    let watch = space::Stopwatch {
        measured_median_ms: m["median_ms"].as_f64().ok_or("stopwatch check: no measurement")?,
        measured_min_ms: m["min_ms"].as_f64().unwrap_or(f64::NAN),
        samples: m["samples"].as_u64().unwrap_or(0) as usize,
        resolution: setting.resolution,
        threads: setting.threads,
        predicted_nominal_ms: p["nominal_ms"].as_f64(),
        predicted_now_ms: p["now_ms"].as_f64(),
        speed_factor: p["speed"]["factor"].as_f64(),
        load: evaluator::latency::loadavg(),
        unix: search::results::unix_now() as u64,
    };
    let mut arch = space::load_arch(&best.display().to_string()).map_err(|e| e.to_string())?;
    eprintln!("stopwatch: best network {}", watch.describe());
    arch.provenance.get_or_insert_with(Default::default).stopwatch = Some(watch);
    search::results::write_atomic(&best, (arch.to_json() + "\n").as_bytes())
}

pub fn exec(args: SearchArgs) -> Result<i32, String> {
    let base = base_config(&args)?;
    let recorded = base.fidelity;
    let mut config = apply_flags(base, &args)?;
    if args.resume.is_some() && config.fidelity != recorded {
        return Err(format!(
            "--resume: this run was made with fidelity {}; a resumed run keeps it (drop --fidelity/--eta/--rungs)",
            serde_json::to_string(&recorded).map_err(|e| e.to_string())?
        ));
    }
    let space = load_space(&config)?;
    config.proxy.follow_space(&space);
    announce_halving(&config)?;
    announce_table(&config.proxy.latency)?;
    let latency = super::latency::service()?;
    calibrate(&mut config, &space, &latency)?;
    let connection = args.broker.as_deref().map(|url| args.auth.connection(url)).transpose()?;
    let (pool, run_id): (Box<dyn search::evaluate::Executor>, _) = match &connection {
        Some(connection) => {
            let queue = super::broker::Queue { ack_wait: args.ack_wait, max_deliver: args.max_deliver };
            super::broker::executor(connection.clone(), queue, args.resume.as_deref(), &config, &latency)?
        }
        None => (Box::new(LocalPool::new(evaluator(&config, &latency)?.evaluator, config.workers)), String::new()),
    };
    warn_if_unreachable(&config, &space, &latency)?;
    let scale_up_hint = scale_up_hint(&config.data);
    announce_speed(&config)?;
    let (latency_setting, times_this_machine) = (config.proxy.latency.clone(), times_this_machine(&config));
    let mut runner = match &args.resume {
        Some(dir) => Runner::resume(dir, config, space, pool)?,
        None => {
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("results/run-{}", search::results::unix_now() as u64)));
            let fresh = !dir.exists();
            Runner::create(&dir, config, space, pool).inspect_err(|_| {
                if fresh {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            })?
        }
    };
    if let Some(connection) = &connection {
        super::broker::record_run_id(runner.dir(), connection, &run_id)?;
    }
    runner = runner.with_progress(!args.quiet);
    let s = runner.run()?;
    let best = match (s.best_reward, s.best_score, s.best_latency_ms, s.metric) {
        (Some(r), Some(a), Some(l), Some(metric)) => {
            let over = if s.best_meets_target == Some(false) { " (no trial meets the target)" } else { "" };
            format!("best trial {} reward {r:.4} {metric} {a:.4} latency {l:.1}ms{over}", s.best_trial.unwrap_or(0))
        }
        _ => "no trial finished".into(),
    };
    eprintln!("nas search: {} trials ({} failed, {} cached), {best}", s.trials, s.failed + s.invalid, s.cached);
    if let Err(e) = stopwatch(runner.dir(), &latency_setting, times_this_machine) {
        eprintln!("nas: warning: {e}");
    }
    let dir = runner.dir().display().to_string();
    if runner.dir().join("best.json").is_file() {
        eprintln!("results in {dir}: best.json (nas inspect {dir}/best.json; nas train --arch {dir}/best.json ...), pareto.json, summary.json, trials.jsonl");
    } else {
        eprintln!("results in {dir}: no trial has a reward yet, so no best.json; more trials: nas search --resume {dir} --trials N");
    }
    eprintln!("{scale_up_hint}");
    Ok(if s.failed + s.invalid > 0 { 1 } else { 0 })
}

/// The closing hint: how to spend more on a search (real data first when it ran on the embedded set).
fn scale_up_hint(data: &str) -> String {
    let data = if data == "default" { "--data <CIFAR-10 folder>, " } else { "" };
    format!("to scale up: {data}--trials 300 or --time 2h, --workers/--threads; --config configs/search-cifar.json trains every candidate (3 proxy epochs), which ranked NAS-Bench-Macro's networks worse than the default NASWOT score (docs/fidelity.md)")
}

#[cfg(test)]
mod tests {
    use super::scale_up_hint;

    #[test]
    fn scale_up_hint_suggests_real_data_only_after_the_embedded_set() {
        assert!(scale_up_hint("default").contains("--data <CIFAR-10 folder>"));
        assert!(!scale_up_hint("target/testdata/cifar10-jpg").contains("--data"));
    }
}
