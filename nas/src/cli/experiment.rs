//! `nas experiment`: the MixConv paper's ablations (kernel size, partition, dilation, single
//! layer) at proxy scale on any data, resumable, with results.json and a plot per experiment.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use evaluator::train::prepared::{DataSpec, PreparedData};
use evaluator::train::proxy::ProxyConfig;

use crate::experiment::journal::{ExperimentConfig, Results, CONFIG_FORMAT};
use crate::experiment::run::{self, LatencyPlan};
use crate::experiment::{plot, variants, Experiment, Variant};
use search::results::write_atomic;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LatencyMethod {
    /// From this machine's lookup table (parts it lacks are measured and added).
    Predict,
    /// Timed whole-network forwards.
    Measure,
    None,
}

/// Trains every variant of one of the paper's experiments for several seeds into --out.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    #[arg(value_enum)]
    pub experiment: Experiment,
    /// Data: `default`, a CIFAR-10 binary folder, an image folder (train/<class>/, test/<class>/)
    /// or an IDX folder. Accuracy is measured on its test split.
    #[arg(long, default_value = "default")]
    pub data: String,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Class-balanced training images per class; all if absent.
    #[arg(long, value_name = "N")]
    pub subset: Option<usize>,
    /// Score on this many test images per class (class-balanced, seeded) [default: all].
    #[arg(long, value_name = "N")]
    pub test_per_class: Option<usize>,
    /// Trainings per variant, with seeds --seed, --seed + 1, ...
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// First training seed; also picks the data subset, the same for every run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Experiment folder; rerunning into it resumes (finished runs are not retrained).
    #[arg(long)]
    pub out: PathBuf,
    /// The network whose depthwise stages the variants rewrite: a file or preset.
    #[arg(long, default_value = "mobilenetv2")]
    pub base: String,
    /// Width multiplier of the mobilenetv2 base (torchvision rounding); 0.5 for proxy scale.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Train and score at this square image side [default: as stored].
    #[arg(long, value_name = "PX")]
    pub resolution: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate of the one-cycle SGD-Nesterov schedule (as `nas search` proxies).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Only these variants (comma-separated names, as in DIR/variants/).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub variants: Vec<String>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, value_enum, default_value = "predict")]
    pub latency: LatencyMethod,
    /// Resolution of the latency and of the MACs reported (one thread, batch 1).
    #[arg(long, default_value_t = 224, value_name = "PX")]
    pub latency_resolution: usize,
}

fn base_arch(a: &ExperimentArgs) -> Result<space::Arch, String> {
    if a.base == "mobilenetv2" {
        if !(a.width > 0.0 && a.width <= 4.0) {
            return Err(format!("--width: {} is not allowed; use a multiplier in (0, 4]", a.width));
        }
        return Ok(space::presets::mobilenetv2_width(a.width));
    }
    if a.width != 1.0 {
        return Err(format!("--width applies to the mobilenetv2 base only, not to {}", a.base));
    }
    space::load_arch(&a.base).map_err(|e| e.to_string())
}

fn selected(a: &ExperimentArgs, all: Vec<Variant>) -> Result<Vec<Variant>, String> {
    if a.variants.is_empty() {
        return Ok(all);
    }
    if let Some(bad) = a.variants.iter().find(|n| !all.iter().any(|v| &v.name == *n)) {
        let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
        return Err(format!("--variants: {bad} is not a {} variant; use {}", a.experiment.name(), names.join(", ")));
    }
    Ok(all.into_iter().filter(|v| a.variants.contains(&v.name)).collect())
}

pub fn exec(a: ExperimentArgs) -> Result<i32, String> {
    evaluator::set_threads(a.threads);
    if a.seeds == 0 || a.epochs == 0 {
        return Err("--seeds and --epochs: use at least 1".into());
    }
    let mut base = base_arch(&a)?;
    let spec = DataSpec {
        source: a.data.clone(),
        train_per_class: a.subset,
        // Accuracy is measured on the test split, so the hold-out is kept minimal.
        val_per_class: Some(1),
        augment: None,
        seed: a.seed,
    };
    let data = PreparedData::load(&spec).map_err(|e| e.to_string())?;
    // Trained with the data's classes; the stem keeps 3 input channels, so latency and costs
    // are those of the RGB network (training adapts the stem to grey images).
    base.classes = data.train.num_classes();
    let mut scoring = data.clone();
    scoring.val = match a.test_per_class {
        Some(n) => std::sync::Arc::new(data.test.subset_per_class(n, a.seed)),
        None => data.test.clone(),
    };
    let cfg = ExperimentConfig {
        format: CONFIG_FORMAT.into(),
        experiment: a.experiment,
        data: a.data.clone(),
        subset: a.subset,
        test_per_class: a.test_per_class,
        data_seed: a.seed,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        resolution: a.resolution,
        base: base.clone(),
    };
    let dir = &a.out;
    std::fs::create_dir_all(dir.join("variants")).map_err(|e| format!("{}: {e}", dir.display()))?;
    cfg.write_or_check(dir)?;
    let all = variants(a.experiment, &base);
    for v in &all {
        write_atomic(&run::variant_file(dir, &v.name), (v.arch.to_json() + "\n").as_bytes())?;
    }
    let chosen = selected(&a, all)?;
    eprintln!(
        "nas experiment {}: {} variants x {} seeds of {} on {} ({} train images, accuracy on {} test images), {} epochs, into {}",
        a.experiment.name(),
        chosen.len(),
        a.seeds,
        base.name.as_deref().unwrap_or("base"),
        a.data,
        data.train.len(),
        scoring.val.len(),
        a.epochs,
        dir.display()
    );
    let seeds: Vec<u64> = (0..a.seeds as u64).map(|i| a.seed + i).collect();
    let proxy = ProxyConfig { epochs: a.epochs, batch: a.batch, max_lr: a.lr, resolution: a.resolution, width: None };
    run::train_missing(dir, &chosen, &seeds, &scoring, &proxy)?;

    let method = match a.latency {
        LatencyMethod::Predict => Some(evaluator::latency::LatencyMethod::Predict),
        LatencyMethod::Measure => Some(evaluator::latency::LatencyMethod::Measure),
        LatencyMethod::None => None,
    };
    let latency =
        LatencyPlan { method, resolution: a.latency_resolution, threads: 1, service: super::latency::service()? };
    run::measure_missing_latency(dir, &chosen, &latency)?;
    let accuracy_on = format!("test ({} images)", scoring.val.len());
    let results = run::write_results(dir, &cfg, &chosen, accuracy_on, a.latency_resolution)?;
    let figure = dir.join(format!("{}.svg", a.experiment.name()));
    write_atomic(&figure, plot::svg(&results, a.experiment.x_label())?.as_bytes())?;
    super::print(&table(&results))?;
    eprintln!("results in {}: results.json, {}, runs.jsonl, variants/", dir.display(), figure.display());
    Ok(0)
}

/// The results as a text table, one variant a line.
fn table(r: &Results) -> String {
    let mut s = format!(
        "{:<16} {:<22} {:>10} {:>13} {:>11} {:>17}\n",
        "variant",
        "kernels",
        "params",
        format!("MACs@{}", r.cost_resolution),
        "latency",
        "accuracy"
    );
    for v in &r.variants {
        let lat = v.latency.as_ref().map_or("-".into(), |l| format!("{:.1}ms", l.ms));
        let acc = match (v.accuracy_mean, v.accuracy_std) {
            (Some(m), Some(sd)) => format!("{:.2} ± {:.2} %", 100.0 * m, 100.0 * sd),
            _ => "-".into(),
        };
        let kernels: String = v.kernels.chars().take(22).collect();
        s += &format!("{:<16} {kernels:<22} {:>10} {:>13} {lat:>11} {acc:>17}\n", v.name, v.params, v.macs);
    }
    s.trim_end().to_string()
}
