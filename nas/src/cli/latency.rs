//! `nas latency`: measured and predicted latency of one architecture on this machine, building
//! the lookup table for a search space, and validating the table against measurement.
//!
//! `--threads` is applied before any tensor work because the compute pool is sized once per
//! process; see `evaluator::latency`. For the same reason a search asks a child `nas latency
//! --request` (a `LatencyRequest` on stdin, a `Latency` on stdout) for whatever a table file
//! cannot answer without timing; [`service`] is that child's address.

use std::path::PathBuf;

use clap::Args;
use evaluator::latency::{
    self as lat, BuildConfig, LatencyMethod, LatencyModel, LatencyRequest, LatencyService, LatencySetting,
    MeasureConfig, TablePredictor,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use space::{load_arch, SearchSpace};

#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// An architecture file or preset name (mixnet-s, mixnet-m, mixnet-l, mobilenetv2, mnasnet-a1).
    #[arg(long, value_name = "FILE|PRESET", required_unless_present_any = ["build_table", "validate", "request", "speed"])]
    pub arch: Option<String>,
    /// Measure (default: measure and predict).
    #[arg(long)]
    pub measure: bool,
    /// Predict from the lookup table (parts missing from it are measured and added).
    #[arg(long)]
    pub predict: bool,
    /// Measure every part reachable in the search space and fit the table's correction.
    #[arg(long, conflicts_with_all = ["arch", "validate"])]
    pub build_table: bool,
    /// Measure and predict `--samples` architectures of the space and report the agreement.
    #[arg(long, conflicts_with = "arch")]
    pub validate: bool,
    /// Time the speed reference for about three seconds and print how fast the machine runs now
    /// against the table's nominal (unloaded) speed; the readings join the table's.
    #[arg(long, conflicts_with_all = ["arch", "build_table", "validate"])]
    pub speed: bool,
    /// Search space file for --build-table and --validate, or `default` [default: the built-in space].
    #[arg(long, value_name = "FILE")]
    pub space: Option<String>,
    /// Lookup table file [default: per machine in $XDG_CACHE_HOME/mixnas/]; with --predict it
    /// may be another device's table (built there, copied here).
    #[arg(long, visible_alias = "out", value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// CPU threads (the target device is one core).
    #[arg(long, default_value_t = 1, value_name = "T")]
    pub threads: usize,
    /// Input resolution (square).
    #[arg(long, default_value_t = 224, value_name = "PX")]
    pub resolution: usize,
    /// Timed forwards per whole-network measurement.
    #[arg(long, default_value_t = 15, value_name = "N")]
    pub repeats: usize,
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub samples: usize,
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Answer one `LatencyRequest` (JSON on stdin) with a `Latency` (JSON on stdout): the child
    /// a search starts for latencies its table file cannot give yet.
    #[arg(long, hide = true, conflicts_with_all = ["arch", "build_table", "validate"])]
    pub request: bool,
}

/// How a library reaches this binary's `nas latency --request`.
pub fn service() -> Result<LatencyService, String> {
    let nas = std::env::current_exe().map_err(|e| format!("locating the nas binary: {e}"))?;
    Ok(LatencyService::new(nas, vec!["latency".into(), "--request".into()]))
}

pub fn exec(a: LatencyArgs) -> Result<i32, String> {
    if a.request {
        return answer(a);
    }
    let threads = evaluator::set_threads(a.threads);
    let cfg = MeasureConfig { resolution: a.resolution, repeats: a.repeats, ..Default::default() };
    match (&a.arch, a.build_table, a.validate) {
        (Some(spec), ..) => one_arch(&a, spec, cfg, threads),
        (None, true, _) => build(&a, cfg),
        (None, _, true) => validate(&a, cfg),
        _ => speed(&a, cfg),
    }
}

fn one_arch(a: &LatencyArgs, spec: &str, cfg: MeasureConfig, threads: usize) -> Result<i32, String> {
    let arch = load_arch(spec).map_err(|e| e.to_string())?;
    let both = a.measure == a.predict;
    let mut out = json!({"arch": spec, "resolution": a.resolution, "batch": 1, "threads": threads});
    if space::presets::by_name(spec).is_some() {
        let c = space::cost(&arch, a.resolution).total;
        out["macs"] = json!(c.macs);
        out["params"] = json!(c.params);
    }
    if a.measure || both {
        let m = lat::measure(&arch, &cfg).map_err(|e| format!("{spec}: {e}"))?;
        out["measured"] = json!({"median_ms": m.median_ms, "min_ms": m.min_ms, "q25_ms": m.q25_ms, "p90_ms": m.p90_ms, "samples": m.samples});
    }
    if a.predict || both {
        out["predicted"] = predict(a, &arch, cfg)?;
    }
    super::print(&match a.json {
        true => serde_json::to_string_pretty(&out).expect("json"),
        false => text(&out),
    })
}

/// The prediction as JSON: from another device's table (with a `device` field, its own nominal
/// speed and no "now") when `--table` is one, else from this machine's (calibrated first if it
/// never was): nominal, and now with the machine's speed timed for three seconds.
fn predict(a: &LatencyArgs, arch: &space::Arch, cfg: MeasureConfig) -> Result<serde_json::Value, String> {
    let setting = predict_setting(a);
    if let Some(device) = setting.device_table().map_err(|e| e.to_string())? {
        let l = device.latency(arch).map_err(|e| e.to_string())?;
        let pr = l.prediction.expect("a table latency is a prediction");
        let table = device.path().display().to_string();
        return Ok(json!({"ms": pr.ms, "nominal_ms": pr.ms, "sum_ms": pr.sum_ms, "parts_measured": 0, "table": table,
            "device": device.machine(), "measured_on": device.describe()}));
    }
    let p = open_calibrated(a, cfg)?;
    let measured_parts = p.predict(arch).map_err(|e| e.to_string())?.measured_parts;
    let now = p.speed_now(SPEED_SECONDS).map_err(|e| e.to_string())?;
    // The second's readings may have moved the nominal: predict at the one now in the table.
    let pr = p.predict(arch).map_err(|e| e.to_string())?;
    let table = p.path().map(|t| t.display().to_string());
    Ok(json!({"ms": pr.ms, "nominal_ms": pr.ms, "now_ms": now.now_ms(pr.ms), "speed": speed_json(&p, &now),
        "sum_ms": pr.sum_ms, "parts_measured": measured_parts, "table": table}))
}

/// Predicting from `--table` (or this machine's default) at the flags' threads and resolution.
fn predict_setting(a: &LatencyArgs) -> LatencySetting {
    LatencySetting {
        method: LatencyMethod::Predict,
        threads: a.threads,
        resolution: a.resolution,
        table: a.table.clone(),
    }
}

/// How long the reference is timed for "now": on a shared machine the speed swings 10-50% from
/// one second to the next; with one second of the gauge 8 of 15 preset predictions were within
/// +-10% of a stopwatch taken right after, with three 12 of 15
/// (results/latency/under-load-2026-12-08-repeats60.txt, -gauge3s.txt).
const SPEED_SECONDS: f64 = 3.0;

/// The machine's speed now against the table's nominal, as JSON.
fn speed_json(p: &TablePredictor, now: &lat::SpeedNow) -> serde_json::Value {
    let readings = p.table().reference_readings;
    json!({"factor": now.factor(), "reference_now_ms": now.reference_ms, "reference_nominal_ms": now.nominal_ms,
        "readings_now": now.readings, "nominal_readings": readings.count, "nominal_since_unix": readings.first_unix,
        "nominal_moved_unix": readings.moved_unix, "describe": now.describe()})
}

/// `--speed`: the machine's speed now against this machine's table (another device's has no now).
fn speed(a: &LatencyArgs, cfg: MeasureConfig) -> Result<i32, String> {
    let setting = predict_setting(a);
    if let Some(device) = setting.device_table().map_err(|e| e.to_string())? {
        return Err(format!(
            "--speed: {} is another device's table ({}): its nominal speed is that device's, and nothing timed here says how fast it runs now",
            device.path().display(),
            device.describe()
        ));
    }
    let p = TablePredictor::open(a.table.as_deref(), cfg).map_err(|e| e.to_string())?;
    let now = p.speed_now(SPEED_SECONDS).map_err(|e| e.to_string())?;
    let mut out = speed_json(&p, &now);
    out["table"] = json!(p.path().map(|t| t.display().to_string()));
    super::print(&match a.json {
        true => serde_json::to_string_pretty(&out).expect("json"),
        false => format!(
            "{} (speed reference {:.2} ms now, {:.2} ms nominal from {} readings)",
            now.describe(),
            now.reference_ms,
            now.nominal_ms,
            out["nominal_readings"]
        ),
    })
}

/// `--request`: the request's setting replaces the flags (threads first, before any tensor).
fn answer(a: LatencyArgs) -> Result<i32, String> {
    let request: LatencyRequest =
        serde_json::from_reader(std::io::stdin().lock()).map_err(|e| format!("latency request on stdin: {e}"))?;
    let s = request.setting;
    let a = LatencyArgs { threads: s.threads, resolution: s.resolution, table: s.table, ..a };
    evaluator::set_threads(a.threads);
    let cfg = MeasureConfig { resolution: a.resolution, repeats: a.repeats, ..Default::default() };
    let model = match s.method {
        LatencyMethod::Measure => LatencyModel::Measured(cfg),
        LatencyMethod::Predict => LatencyModel::Table(Box::new(open_calibrated(&a, cfg)?)),
    };
    let what = request.arch.name.as_deref().unwrap_or("architecture");
    let latency = lat::latency(&request.arch, &model).map_err(|e| format!("{what}: {e}"))?;
    super::print(&serde_json::to_string(&latency).expect("json"))
}

fn text(o: &serde_json::Value) -> String {
    let mut s = format!(
        "{}  {}x{} batch 1, {} thread(s)",
        o["arch"].as_str().unwrap_or(""),
        o["resolution"],
        o["resolution"],
        o["threads"]
    );
    if let (Some(macs), Some(params)) = (o["macs"].as_u64(), o["params"].as_u64()) {
        s += &format!("\n  {:.1}M MACs, {:.2}M params", macs as f64 / 1e6, params as f64 / 1e6);
    }
    if let Some(m) = o.get("measured") {
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        s += &format!(
            "\n  measured  {:.2} ms (min {:.2}, q25 {:.2}, p90 {:.2}, {} runs)",
            f("median_ms"),
            f("min_ms"),
            f("q25_ms"),
            f("p90_ms"),
            m["samples"]
        );
    }
    if let Some(p) = o.get("predicted") {
        let table = p["table"].as_str().unwrap_or("-");
        let ms = p["nominal_ms"].as_f64().unwrap_or(f64::NAN);
        match (p["measured_on"].as_str(), p["now_ms"].as_f64()) {
            (Some(device), _) => {
                s += &format!(
                    "\n  predicted {ms:.2} ms nominal on {device} (table {table}; no \"now\" for another device)"
                )
            }
            (None, Some(now)) => {
                s += &format!("\n  predicted {ms:.2} ms nominal (this machine at its fastest; table {table})");
                let said = p["speed"]["describe"].as_str().unwrap_or("");
                s += &format!("\n            {now:.2} ms now ({said})");
            }
            (None, None) => s += &format!("\n  predicted {ms:.2} ms (table {table})"),
        }
    }
    s
}

fn load_space(a: &LatencyArgs) -> Result<SearchSpace, String> {
    SearchSpace::from_spec(a.space.as_deref().unwrap_or("default")).map_err(|e| e.to_string())
}

/// The table for this machine, calibrated on a few networks of the space first if it never was
/// (parts are otherwise measured on first use).
fn open_calibrated(a: &LatencyArgs, cfg: MeasureConfig) -> Result<TablePredictor, String> {
    let p = TablePredictor::open(a.table.as_deref(), cfg).map_err(|e| e.to_string())?;
    if p.table().fit.is_none() {
        eprintln!("nas: latency table not calibrated yet; measuring a few networks of the space first");
        let build = BuildConfig { max_parts: 0, coverage_samples: 1, ..Default::default() };
        lat::build_table(&p, &load_space(a)?, &build, &mut bar()).map_err(|e| e.to_string())?;
    }
    Ok(p)
}

/// A progress callback drawing one bar per stage on stderr.
fn bar() -> impl FnMut(&str, usize, usize, &str) {
    let pb = ProgressBar::new(0);
    pb.set_style(ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {wide_msg}").expect("template"));
    move |stage, done, total, label| {
        pb.set_prefix(stage.to_string());
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        pb.set_message(label.to_string());
        if done + 1 == total && stage == "networks" {
            pb.finish_and_clear();
        }
    }
}

fn build(a: &LatencyArgs, cfg: MeasureConfig) -> Result<i32, String> {
    let space = load_space(a)?;
    let p = TablePredictor::open(a.table.as_deref(), cfg).map_err(|e| e.to_string())?;
    let r = lat::build_table(&p, &space, &BuildConfig { seed: a.seed, ..Default::default() }, &mut bar())
        .map_err(|e| e.to_string())?;
    let path = p.path().map(|t| t.display().to_string()).unwrap_or_default();
    let out = json!({"table": path, "reachable_parts": r.reachable, "measured": r.measured, "lazy": r.lazy,
        "entries": p.table().entries.len(), "scale": r.fit.scale, "constant_ms": r.fit.constant_ms});
    super::print(&match a.json {
        true => serde_json::to_string_pretty(&out).expect("json"),
        false => format!(
            "{path}: {} parts reachable ({}), {} measured now, fit {:.3} x sum + {:.2} ms",
            r.reachable,
            if r.lazy { "too many: the rest are measured on first use" } else { "all measured" },
            r.measured,
            r.fit.scale,
            r.fit.constant_ms
        ),
    })
}

fn validate(a: &LatencyArgs, cfg: MeasureConfig) -> Result<i32, String> {
    let space = load_space(a)?;
    let p = open_calibrated(a, cfg)?;
    let pb = ProgressBar::new(a.samples as u64);
    let r =
        lat::validate(&p, &space, a.samples, a.seed, |i, _| pb.set_position(i as u64)).map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    if a.json {
        return super::print(&serde_json::to_string_pretty(&r).expect("json"));
    }
    let line = |name: &str, x: &lat::Accuracy| {
        format!(
            "  {name:<14} within 10%: {:5.1}%  within 5%: {:5.1}%  MAPE {:.1}%",
            100.0 * x.within_10,
            100.0 * x.within_5,
            x.mape
        )
    };
    let reference = format!(
        "reference MixNet-S at {} px: {:.2} ms nominal, from {} readings",
        lat::SpeedReference::resolution(&cfg),
        r.nominal_reference_ms,
        r.nominal_readings
    );
    let baseline = |x: &lat::Accuracy, k: f64, on: &str| {
        format!("{}  (k = {k:.4} ms/MMAC, fitted on these {on})", line("MACs baseline", x))
    };
    super::print(
        &[
            format!(
                "{} samples (seed {}), {}x{}, {} thread(s), {} timed runs per network; load {} before, {} after",
                r.samples.len(),
                r.seed,
                r.resolution,
                r.resolution,
                r.threads,
                cfg.repeats,
                load(&r.load_before),
                load(&r.load_after)
            ),
            "against the raw median (what timing a network here gives):".into(),
            line("table now", &r.now_vs_raw_median),
            baseline(&r.macs_baseline_vs_raw_median, r.ms_per_mmac_raw_median, "medians"),
            line("table nominal", &r.table_vs_raw_median),
            "against the raw minimum (the nearest a stopwatch gets to the unloaded machine):".into(),
            line("table nominal", &r.nominal_vs_raw_min),
            baseline(&r.macs_baseline_vs_raw_min, r.ms_per_mmac_raw_min, "minimums"),
            format!("against the 25th percentile adjusted to the table's machine speed ({reference}):"),
            line("table", &r.table),
            baseline(&r.macs_baseline, r.ms_per_mmac, "times"),
            line("table/raw q25", &r.table_vs_raw),
            RAW_VS_ADJUSTED.into(),
        ]
        .join("\n"),
    )
}

/// The 1-minute load average of a `/proc/loadavg` line ("?" without one).
fn load(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("?")
}

/// When each validation figure applies (printed under them, and said in docs/latency.md).
const RAW_VS_ADJUSTED: &str = "\"Now\" against the raw median is the figure to hold a prediction against your own \
timing of a network on this machine right after; nominal is the machine at its fastest; the speed-adjusted figure \
removes the machine's drift in speed, which shifts all networks alike, so it is the figure for comparing networks \
with each other, as a search does.";
