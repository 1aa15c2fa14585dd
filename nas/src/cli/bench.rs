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
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[command(flatten)]
        net: BenchedNet,
    },
    /// Batched inference of the frozen network (the path validation and candidate scoring run)
    /// -> ms per batch (median), images_per_s. Stride-adapted at <= 64 px unless --no-adapt.
    Eval {
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[command(flatten)]
        net: BenchedNet,
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

/// The network `nas bench train` and `nas bench eval` time, and how they run it.
#[derive(Args, Debug)]
pub struct BenchedNet {
    #[arg(long, default_value = "mixnet-s")]
    arch: String,
    /// Time the network as given (timm's strides), not the one `nas train` trains at <= 64 px.
    #[arg(long)]
    no_adapt: bool,
    /// Width multiplier applied to the network first (timm's channel_multiplier).
    #[arg(long, default_value_t = 1.0)]
    width: f64,
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
}

impl BenchedNet {
    /// Sets the thread pool and builds the network: `arch` at `width`, stride-adapted for `res`
    /// unless `no_adapt`, with `classes` outputs. Returns it with the JSON fields that say which
    /// network ran (`what`, model, width, batch, res, threads, adapted, final_map, mmacs).
    fn build(&self, what: &str, batch: usize) -> Result<(space::Arch, serde_json::Value), String> {
        let width = self.width;
        if !(width > 0.0 && width <= 4.0) {
            return Err(format!("--width: {width} is not allowed; use a multiplier in (0, 4]"));
        }
        let threads = evaluator::set_threads(self.threads);
        let given = arch(&self.arch)?.widened(width);
        let mut net = if self.no_adapt { given.clone() } else { adapt_for_resolution(&given, self.res) };
        let adapted = net != given;
        net.classes = self.classes;
        let (final_map, mmacs) = shape(&net, self.res);
        let fields = json!({"what": what, "model": self.arch, "width": width, "batch": batch, "res": self.res,
            "threads": threads, "adapted": adapted, "final_map": final_map, "mmacs": mmacs});
        Ok((net, fields))
    }
}

/// `fields` with `more` and the peak RSS and version every bench line ends with.
fn line(mut fields: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    let (obj, more) = (fields.as_object_mut().expect("an object"), more.as_object().expect("an object"));
    obj.extend(more.clone());
    obj.insert("peak_rss_mib".into(), json!(peak_rss_mib().map(|m| m.round())));
    obj.insert("mixnas".into(), json!(env!("CARGO_PKG_VERSION")));
    fields
}

fn arch(spec: &str) -> Result<space::Arch, String> {
    space::load_arch(spec).map_err(|e| e.to_string())
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
        BenchWhat::Train { batch, net: spec } => {
            let (net, fields) = spec.build("train", batch)?;
            let cfg = TrainBenchConfig {
                batch,
                resolution: spec.res,
                classes: spec.classes,
                warmup: spec.warmup,
                repeats: spec.repeats,
            };
            let r = train_step(&net, &cfg).map_err(|e| e.to_string())?;
            let timing = json!({"step_ms": round2(r.step_ms), "images_per_s": (r.images_per_s * 10.0).round() / 10.0});
            println!("{}", line(fields, timing));
        }
        BenchWhat::Eval { batch, net: spec } => {
            let (net, fields) = spec.build("eval", batch)?;
            let cfg = MeasureConfig {
                resolution: spec.res,
                batch,
                warmup: spec.warmup,
                repeats: spec.repeats,
                max_seconds: 120.0,
            };
            let m = measure(&net, &cfg).map_err(|e| e.to_string())?;
            let images_per_s = (batch as f64 / (m.median_ms / 1e3) * 10.0).round() / 10.0;
            println!(
                "{}",
                line(fields, json!({"ms": round2(m.median_ms), "images_per_s": images_per_s, "samples": m.samples}))
            );
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
