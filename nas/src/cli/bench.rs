//! `nas bench`: the numbers to hold against PyTorch and ONNX Runtime, one JSON line each, with
//! the same fields as `shared/bench/torch_reference.py` and `ort_reference.py`.

use clap::{Args, Subcommand};
use evaluator::latency::measure::{measure, MeasureConfig};
use evaluator::model::adapt_for_resolution;
use evaluator::train_bench::{peak_rss_mib, train_step, TrainBenchConfig};
use serde_json::json;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Training step (forward, cross-entropy, backward, SGD-momentum) -> step_ms, images_per_s.
    /// At <= 64 px it times the stride-adapted network `nas train` trains, unless --no-adapt.
    Train {
        #[arg(long, default_value = "mixnet-s")]
        arch: String,
        /// Time the network as given (timm's strides), not the one `nas train` trains at <= 64 px.
        #[arg(long)]
        no_adapt: bool,
        /// Width multiplier applied to the network first (timm's channel_multiplier).
        #[arg(long, default_value_t = 1.0)]
        width: f64,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 32)]
        res: usize,
        #[arg(long, default_value_t = 10)]
        classes: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
    },
    /// Batched inference of the frozen network (the path validation and candidate scoring run)
    /// -> ms per batch (median), images_per_s. Stride-adapted at <= 64 px unless --no-adapt.
    Eval {
        #[arg(long, default_value = "mixnet-s")]
        arch: String,
        #[arg(long)]
        no_adapt: bool,
        #[arg(long, default_value_t = 1.0)]
        width: f64,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[arg(long, default_value_t = 32)]
        res: usize,
        #[arg(long, default_value_t = 10)]
        classes: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
    },
    /// Eval-mode inference at 224x224, batch 1 -> ms (median).
    Latency {
        #[arg(long, default_value = "mixnet-s")]
        arch: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 224)]
        res: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
    },
    /// Per-op micro-benchmarks (forward and backward), ours against candle's reference ops.
    Ops {
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Only the ops whose name contains this text (e.g. "pointwise", "bn").
        #[arg(long, default_value = "")]
        only: String,
    },
}

fn arch(spec: &str) -> Result<space::Arch, String> {
    space::load_arch(spec).map_err(|e| e.to_string())
}

/// The network a bench times: `spec` at `width`, stride-adapted for `res` unless `no_adapt`,
/// with `classes` outputs; and whether the adaptation changed it.
fn benched(spec: &str, width: f64, no_adapt: bool, res: usize, classes: usize) -> Result<(space::Arch, bool), String> {
    if !(width > 0.0 && width <= 4.0) {
        return Err(format!("--width: {width} is not allowed; use a multiplier in (0, 4]"));
    }
    let given = arch(spec)?.widened(width);
    let mut net = if no_adapt { given.clone() } else { adapt_for_resolution(&given, res) };
    let adapted = net != given;
    net.classes = classes;
    Ok((net, adapted))
}

/// The side of the last feature map and the multiply-adds (millions) of `net` at `res`: which
/// network ran.
fn shape(net: &space::Arch, res: usize) -> (usize, f64) {
    let cost = space::cost(net, res);
    (cost.blocks.last().map_or(res, |b| b.resolution_out), round2(cost.total.macs as f64 / 1e6))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn exec(a: BenchArgs) -> Result<i32, String> {
    match a.what {
        BenchWhat::Train { arch: spec, no_adapt, width, batch, res, classes, threads, warmup, repeats } => {
            let threads = evaluator::set_threads(threads);
            let (net, adapted) = benched(&spec, width, no_adapt, res, classes)?;
            let cfg = TrainBenchConfig { batch, resolution: res, classes, warmup, repeats };
            let r = train_step(&net, &cfg).map_err(|e| e.to_string())?;
            let (final_map, mmacs) = shape(&net, res);
            let line = json!({"what": "train", "model": spec, "width": width, "batch": batch, "res": res,
                "threads": threads, "adapted": adapted, "final_map": final_map, "mmacs": mmacs,
                "step_ms": round2(r.step_ms), "images_per_s": (r.images_per_s * 10.0).round() / 10.0,
                "peak_rss_mib": peak_rss_mib().map(|m| m.round()), "mixnas": env!("CARGO_PKG_VERSION")});
            println!("{line}");
        }
        BenchWhat::Eval { arch: spec, no_adapt, width, batch, res, classes, threads, warmup, repeats } => {
            let threads = evaluator::set_threads(threads);
            let (net, adapted) = benched(&spec, width, no_adapt, res, classes)?;
            let cfg = MeasureConfig { resolution: res, batch, warmup, repeats, max_seconds: 120.0 };
            let m = measure(&net, &cfg).map_err(|e| e.to_string())?;
            let (final_map, mmacs) = shape(&net, res);
            let line = json!({"what": "eval", "model": spec, "width": width, "batch": batch, "res": res,
                "threads": threads, "adapted": adapted, "final_map": final_map, "mmacs": mmacs,
                "ms": round2(m.median_ms), "images_per_s": (batch as f64 / (m.median_ms / 1e3) * 10.0).round() / 10.0,
                "samples": m.samples, "peak_rss_mib": peak_rss_mib().map(|m| m.round()),
                "mixnas": env!("CARGO_PKG_VERSION")});
            println!("{line}");
        }
        BenchWhat::Latency { arch: spec, threads, res, warmup, repeats } => {
            let threads = evaluator::set_threads(threads);
            let cfg = MeasureConfig { resolution: res, batch: 1, warmup, repeats, max_seconds: 60.0 };
            let m = measure(&arch(&spec)?, &cfg).map_err(|e| e.to_string())?;
            let line = json!({"what": "latency", "model": spec, "res": res, "batch": 1, "threads": threads,
                "ms": round2(m.median_ms), "min_ms": round2(m.min_ms), "p90_ms": round2(m.p90_ms),
                "mixnas": env!("CARGO_PKG_VERSION")});
            println!("{line}");
        }
        BenchWhat::Ops { threads, repeats, only } => {
            evaluator::set_threads(threads);
            for t in kernels::bench::run(threads, repeats, &only).map_err(|e| e.to_string())? {
                println!("{}", serde_json::to_string(&t).map_err(|e| e.to_string())?);
            }
        }
    }
    Ok(0)
}
