//! `nas fidelity`: does an evaluator rank networks the way full training does? It scores a
//! seeded sample of a ground truth's networks (NAS-Bench-Macro: 50 epochs, three seeds) and
//! reports Kendall tau, Spearman, top-10% recall and within-FLOPs-quartile tau with bootstrap
//! intervals, beside the same statistics for counting params, MACs and latency.

use std::path::{Path, PathBuf};

use clap::Args;

use search::fidelity::run::{run, FidelityConfig, FidelityResults, FIDELITY_FORMAT};
use search::fidelity::truth::DEFAULT_FIELD;
use search::fidelity::{Estimate, RankReport, Truth, NAS_BENCH_MACRO};
use search::setup::EvaluatorKind;
use space::family::{NAS_BENCH_MACRO as FAMILY, NAS_BENCH_MACRO_CODES, NAS_BENCH_MACRO_RESOLUTION};
use space::SearchSpace;

#[derive(Args, Debug)]
pub struct FidelityArgs {
    /// The family the truth's codes name: nas-bench-macro, or its space file
    /// (configs/space-nas-bench-macro.json).
    #[arg(long, value_name = "NAME|FILE", default_value = FAMILY)]
    pub space: String,
    /// Ground truth in NAS-Bench-Macro's format, `{code: {mean_acc, params, flops, ...}}`.
    #[arg(long, value_name = "FILE")]
    pub truth: PathBuf,
    /// The truth's field to rank by.
    #[arg(long, default_value = DEFAULT_FIELD)]
    pub field: String,
    /// proxy (the search's proxy training), table:FILE[:FIELD], zero:synflow, zero:naswot (on a
    /// batch of the proxy data's training images), supernet:DIR (a `nas supernet train` folder
    /// over configs/space-nas-bench-macro.json; --data its data) or surrogate [default: the
    /// config's].
    #[arg(long, value_name = "SPEC")]
    pub evaluator: Option<String>,
    /// Networks to score, drawn one per FLOPs stratum.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..))]
    pub samples: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Proxy data: `default` or a data folder [default: the config's].
    #[arg(long)]
    pub data: Option<String>,
    /// Search config whose `proxy` block sets the proxy's training [default: configs/search.json
    /// if present].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Predict latency (the latency baseline and rows) with this table, e.g. one built on the
    /// device you ship to (`nas latency --build-table --table FILE` there).
    #[arg(long, value_name = "FILE")]
    pub latency_table: Option<PathBuf>,
    /// CPU threads for scoring [default: the config's].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The run folder (resumed when it holds a run with the same settings).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print results.json instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: FidelityArgs) -> Result<i32, String> {
    let mut config = fidelity_config(&args)?;
    let truth = Truth::load(&args.truth, &args.field, NAS_BENCH_MACRO)?;
    let latency = super::latency::service()?;
    // The evaluators that compute on this process's pool run at the asked thread count.
    if matches!(config.evaluator, EvaluatorKind::Proxy | EvaluatorKind::Zero(_)) {
        evaluator::set_threads(config.threads);
    }
    // A zero-cost score's scale over random codes of the family, as a search of its space has.
    let reference = search::evaluate::reference_drawn(config.seed, |rng| {
        let code: String = (0..NAS_BENCH_MACRO_CODES.length)
            .map(|_| NAS_BENCH_MACRO_CODES.digits.as_bytes()[rng.below(NAS_BENCH_MACRO_CODES.digits.len())] as char)
            .collect();
        space::family::nas_bench_macro(&code)
    })?;
    search::setup::calibrate(&config.evaluator, &config.data, &mut config.proxy, config.seed, &latency, &reference)?;
    let built = config.evaluator.build(&config.data, &config.proxy, config.seed, &latency)?;
    if let Some(line) = &built.description {
        eprintln!("{line}");
    }
    let mut progress = |done: usize, total: usize, row: &search::fidelity::run::Row| {
        eprintln!(
            "[{done}/{total}] {} score {:.4} truth {:.2} ({:.1}s)",
            row.code, row.score, row.truth, row.wall_seconds
        );
    };
    let results = run(&config, &truth, built.evaluator.as_ref(), &args.out, &mut progress)?;
    let text = match args.json {
        true => serde_json::to_string_pretty(&results).expect("results serialise"),
        false => table(&results, &args.out),
    };
    super::print(&text)
}

fn fidelity_config(args: &FidelityArgs) -> Result<FidelityConfig, String> {
    let base = super::search::defaults_file(args.config.as_deref())?;
    let mut proxy = base.proxy;
    // Latency (the latency baseline) at the resolution the family's networks are judged at.
    proxy.latency.resolution = NAS_BENCH_MACRO_RESOLUTION;
    if let Some(table) = &args.latency_table {
        proxy.latency = super::search::adopt_table(table)?;
        if proxy.latency.resolution != NAS_BENCH_MACRO_RESOLUTION {
            return Err(format!(
                "--latency-table {}: built at {}x{0}; NAS-Bench-Macro's networks are judged at {NAS_BENCH_MACRO_RESOLUTION}x{NAS_BENCH_MACRO_RESOLUTION}",
                table.display(),
                proxy.latency.resolution
            ));
        }
    }
    let truth = std::path::absolute(&args.truth).map_err(|e| format!("{}: {e}", args.truth.display()))?;
    Ok(FidelityConfig {
        format: FIDELITY_FORMAT.to_string(),
        space: family(&args.space)?,
        truth: truth.display().to_string(),
        field: args.field.clone(),
        evaluator: match &args.evaluator {
            Some(spec) => super::search::absolute_table(spec.parse()?)?,
            None => base.evaluator,
        },
        samples: args.samples as usize,
        seed: args.seed,
        data: args.data.clone().unwrap_or(base.data),
        proxy,
        threads: args.threads.unwrap_or(base.threads).max(1),
    })
}

/// The family `--space` names: its name, or a space file whose points are exactly its codes.
/// A run records the family's name, so either spelling resumes the other's folder.
fn family(spec: &str) -> Result<String, String> {
    if spec == FAMILY {
        return Ok(FAMILY.to_string());
    }
    let allowed = format!("nas fidelity scores {FAMILY} codes: use --space {FAMILY} or configs/space-{FAMILY}.json");
    let space = SearchSpace::from_spec(spec).map_err(|e| format!("--space {e}; {allowed}"))?;
    match holds_the_family(&space) {
        true => Ok(FAMILY.to_string()),
        false => Err(format!(
            "--space {spec}: space {:?} does not hold exactly the {FAMILY} networks; {allowed}",
            space.name
        )),
    }
}

/// Whether `space`'s points are exactly NAS-Bench-Macro's networks: as many, each one a point.
fn holds_the_family(space: &SearchSpace) -> bool {
    let rule = NAS_BENCH_MACRO_CODES;
    let digits = rule.digits.as_bytes();
    let count = rule.count() as usize;
    let code = |i: usize| -> String {
        (0..rule.length).map(|p| digits[i / digits.len().pow(p as u32) % digits.len()] as char).collect()
    };
    let points = space.num_options().iter().try_fold(1usize, |n, &options| n.checked_mul(options));
    points == Some(count)
        && (0..count).all(|i| space::family::nas_bench_macro(&code(i)).is_ok_and(|arch| space.encode(&arch).is_some()))
}

fn estimate(e: &Estimate) -> String {
    format!("{:>6.3} [{:.2}, {:.2}]", e.value, e.low, e.high)
}

fn line(name: &str, r: &RankReport) -> String {
    format!(
        "{name:<16} {}  {}  {}  {}\n",
        estimate(&r.kendall_tau),
        estimate(&r.spearman),
        estimate(&r.top10_recall),
        estimate(&r.within_quartile_tau)
    )
}

fn table(r: &FidelityResults, dir: &Path) -> String {
    let c = &r.config;
    let mut out = format!(
        "{} networks of {} scored by {} against {} (seed {}); 95% bootstrap intervals\n",
        r.rows.len(),
        c.truth,
        c.evaluator,
        c.field,
        c.seed
    );
    out += &format!(
        "{:<16} {:<20}  {:<20}  {:<20}  {:<20}\n",
        "score", "Kendall tau", "Spearman", "top-10% recall", "tau within MACs quartiles"
    );
    out += &line(c.evaluator.name(), &r.evaluator);
    for (name, by_loss) in &r.losses {
        out += &line(name, by_loss);
    }
    for (name, report) in &r.baselines {
        out += &line(name, report);
    }
    out += &format!(
        "per candidate: {:.2} s wall, {:.2} s CPU\nrows and statistics: {}\n",
        r.per_candidate.wall_seconds,
        r.per_candidate.cpu_seconds,
        dir.join("results.json").display()
    );
    out
}
