//! `nas score`: every point of a small space scored by the search's evaluator, exactly as
//! `nas search` with the same config, space, data and seed would score it, into a table file
//! (`search::landscape`) that `--evaluator table:DIR/table.json:score` reads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use search::landscape::{self, LandscapeConfig, Progress, LANDSCAPE_FORMAT, SCORE_FIELD};
use search::runner::RunConfig;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A search-space file small enough to enumerate whose points are NAS-Bench-Macro networks
    /// (configs/space-nas-bench-macro.json).
    #[arg(long)]
    pub space: String,
    /// Score every point of the space.
    #[arg(long, required = true)]
    pub all: bool,
    /// Data: `default` or a data folder [default: the config's].
    #[arg(long)]
    pub data: Option<String>,
    /// The evaluator, as `nas search --evaluator` [default: the config's, zero:naswot].
    #[arg(long, value_name = "SPEC")]
    pub evaluator: Option<String>,
    /// The search seed whose scores to reproduce [default: the config's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// CPU threads [default: the config's].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Search config [default: configs/search.json if present].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The folder (resumed when it holds a landscape with the same settings).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Stop after scoring this many points (the table holds what is done; run again to go on).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Stop after this long: 90s, 10m or 2h (then as --limit).
    #[arg(long, value_name = "DURATION", value_parser = super::search::parse_duration)]
    pub time: Option<f64>,
}

pub fn exec(args: ScoreArgs) -> Result<i32, String> {
    let mut run = run_config(&args)?;
    let space = super::search::load_space(&run)?;
    run.proxy.follow_space(&space);
    let points = landscape::points(&space, &args.space)?;
    let latency = super::latency::service()?;
    // A resumed landscape keeps the zero-cost scale it was started with, as a resumed search does.
    let recorded = args.out.join("landscape.json");
    if recorded.is_file() {
        run.proxy.zero_scale = search::results::read_json::<LandscapeConfig>(&recorded)?.proxy.zero_scale;
    }
    super::search::calibrate(&mut run, &space, &latency)?;
    let built = super::search::evaluator(&run, &latency)?;
    let config = LandscapeConfig {
        format: LANDSCAPE_FORMAT.to_string(),
        space: args.space.clone(),
        evaluator: run.evaluator,
        seed: run.seed,
        data: run.data,
        data_fingerprint: built.data_fingerprint,
        proxy: run.proxy,
        threads: run.threads,
    };
    let started = Instant::now();
    let mut stop = |new: usize| {
        args.limit.is_some_and(|n| new >= n) || args.time.is_some_and(|t| started.elapsed().as_secs_f64() >= t)
    };
    let rows = landscape::run(&config, &points, built.evaluator.as_ref(), &args.out, &mut stop, &mut progress)?;
    eprintln!("{}", closing(rows.len(), points.len(), &args.out));
    Ok(0)
}

/// The search config with this command's flags over it.
fn run_config(args: &ScoreArgs) -> Result<RunConfig, String> {
    let mut c = super::search::defaults_file(args.config.as_deref())?;
    c.space = args.space.clone();
    c.seed = args.seed.unwrap_or(c.seed);
    c.threads = args.threads.unwrap_or(c.threads).max(1);
    c.data = args.data.clone().unwrap_or(c.data);
    if let Some(spec) = &args.evaluator {
        c.evaluator = super::search::absolute_table(spec.parse()?)?;
    }
    Ok(c)
}

fn progress(p: &Progress) {
    let r = p.row;
    let raw: String = r.details.iter().filter_map(|(k, v)| Some(format!(" {k} {:.2}", v.as_f64()?))).collect();
    eprintln!(
        "[{}/{}] {} score {:.4}{raw} latency {:.2}ms ({:.2}s); {:.2} points/s, about {} left",
        p.done,
        p.total,
        r.code,
        r.score,
        r.latency_ms,
        r.wall_seconds,
        p.rate,
        minutes(p.eta_seconds())
    );
}

fn minutes(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.0}s"),
        s => format!("{:.0}m", s / 60.0),
    }
}

fn closing(done: usize, total: usize, dir: &Path) -> String {
    let table = dir.join("table.json");
    let state = match done == total {
        true => format!("all {total} points scored"),
        false => format!("{done} of {total} points scored (run the same command again to go on)"),
    };
    format!("nas score: {state}; table {} (--evaluator table:{0}:{SCORE_FIELD})", table.display())
}
