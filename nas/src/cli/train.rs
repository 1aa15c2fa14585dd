//! `nas train` (re-train a found MixNet or a preset, with checkpoints and resume) and
//! `nas eval` (test accuracy of a checkpoint, as JSON).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use evaluator::train::optim::{AdamWConfig, OptimizerConfig, RmsPropTfConfig, SgdConfig};
use evaluator::train::prepared::{DataSpec, PreparedData};
use evaluator::train::run_dir::{train_to_dir, Checkpoint, Metrics};
use evaluator::train::schedule::LrSchedule;
use evaluator::train::trainer::{accuracy, epoch_lines, TrainConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerName {
    /// SGD with Nesterov momentum 0.9.
    Sgd,
    /// RMSProp with TF semantics (decay 0.9, momentum 0.9, eps 1e-3), the MixNet recipe.
    Rmsprop,
    Adamw,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScheduleName {
    /// PyTorch OneCycleLR: up to --lr over 30% of the run, then cosine down.
    OneCycle,
    /// Linear warm-up (--warmup-epochs), then cosine to zero.
    Cosine,
    /// TF MnasNet: warm-up, then x0.97 every 2.4 epochs.
    Tf,
}

/// Re-trains an architecture (a search's best.json or a preset) on real data.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Architecture file, preset name (mixnet-s, mixnet-m, mixnet-l, mobilenetv2, mnasnet-a1),
    /// nas-bench-macro:CODE or timm model name (mixnet_s, tf_mixnet_m, ...: timm's padding and BN
    /// eps, for --init).
    #[arg(long, required_unless_present = "resume")]
    pub arch: Option<String>,
    /// Data: `default` (embedded Fashion-MNIST subset), a CIFAR-10 binary folder, an image
    /// folder (train/<class>/, test/<class>/) or an IDX folder.
    #[arg(long, default_value = "default")]
    pub data: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Class-balanced training images per class (before the validation hold-out); all if absent.
    #[arg(long, value_name = "N")]
    pub subset: Option<usize>,
    /// Validation images per class held out of training [default: 10% of the smallest class].
    #[arg(long, value_name = "N")]
    pub val_per_class: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerName,
    #[arg(long, value_enum, default_value = "one-cycle")]
    pub schedule: ScheduleName,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    /// Keep an EMA of the weights with this decay and evaluate with it.
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Turn augmentation off (default: on for natural images, off for the MNIST family).
    #[arg(long)]
    pub no_augment: bool,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (model.safetensors, checkpoint.json, metrics.json).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Fine-tune: start from a `nas train` checkpoint directory or a timm-format `.safetensors`
    /// (timm names, e.g. HF hub `timm/mixnet_s.ft_in1k` model.safetensors with --arch mixnet_s).
    /// The classifier is re-created when the class count differs.
    #[arg(long, value_name = "DIR|FILE")]
    pub init: Option<PathBuf>,
    /// Fine-tune: keep the stem and blocks 0..N-1 as loaded (a fixed feature extractor; their
    /// batch norm uses its running statistics, as timm's `freeze`). `nas inspect` numbers blocks.
    #[arg(long, value_name = "N", requires = "init")]
    pub freeze_until: Option<usize>,
    /// Fine-tune: learning-rate multiplier for every pretrained tensor (all but the classifier),
    /// e.g. 0.1.
    #[arg(long, value_name = "SCALE", requires = "init")]
    pub backbone_lr_scale: Option<f64>,
    /// Train and evaluate at R x R pixels (bilinear resize per batch), e.g. 224 to fine-tune
    /// ImageNet weights on CIFAR as the paper did. Up to 64 px the stem and first stride-2
    /// block keep stride 1 (proxy adaptation); above, the network is the original one.
    #[arg(long, value_name = "R")]
    pub resolution: Option<usize>,
    /// Continue the killed or finished run in DIR with its own configuration.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["arch", "out"])]
    pub resume: Option<PathBuf>,
    /// No progress: neither the bar (on a terminal) nor the line per epoch (otherwise).
    #[arg(long)]
    pub quiet: bool,
}

fn optimizer(a: &TrainArgs) -> OptimizerConfig {
    let wd = a.weight_decay;
    match a.optimizer {
        OptimizerName::Sgd => OptimizerConfig::Sgd(SgdConfig { momentum: 0.9, nesterov: true, weight_decay: wd }),
        OptimizerName::Rmsprop => {
            OptimizerConfig::RmsPropTf(RmsPropTfConfig { weight_decay: wd, ..Default::default() })
        }
        OptimizerName::Adamw => OptimizerConfig::AdamW(AdamWConfig { weight_decay: wd, ..Default::default() }),
    }
}

fn schedule(a: &TrainArgs) -> LrSchedule {
    let epochs = a.epochs as f64;
    match a.schedule {
        ScheduleName::OneCycle => LrSchedule::one_cycle(a.lr, epochs),
        ScheduleName::Cosine => LrSchedule::WarmupCosine {
            peak_lr: a.lr,
            warmup_epochs: a.warmup_epochs,
            total_epochs: epochs,
            floor_lr: 0.0,
            warmup_start_lr: 0.0,
        },
        ScheduleName::Tf => LrSchedule::WarmupExpStep {
            peak_lr: a.lr,
            warmup_epochs: a.warmup_epochs,
            decay_rate: 0.97,
            decay_epochs: 2.4,
            warmup_start_lr: 0.0,
        },
    }
}

/// The run to perform: (arch, data, config, dir, resume).
fn plan(a: &TrainArgs) -> Result<(space::Arch, DataSpec, TrainConfig, PathBuf, bool), String> {
    if let Some(dir) = &a.resume {
        let r = Checkpoint::read(dir).map_err(|e| e.to_string())?.record;
        let missing = || format!("{}: the checkpoint has no training state to resume", dir.display());
        let arch = r.source_arch.ok_or_else(missing)?;
        let (data, train) = (r.data.ok_or_else(missing)?, r.train.ok_or_else(missing)?);
        return Ok((arch, data.spec, train, dir.clone(), true));
    }
    let arch = space::load_arch(a.arch.as_deref().expect("clap requires --arch")).map_err(|e| e.to_string())?;
    if a.epochs == 0 {
        return Err("--epochs 0: train for at least 1 epoch (`nas eval` scores a checkpoint as it is)".into());
    }
    let data = DataSpec {
        source: a.data.clone(),
        train_per_class: a.subset,
        val_per_class: a.val_per_class,
        augment: a.no_augment.then_some(false),
        seed: a.seed,
    };
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        optimizer: optimizer(a),
        schedule: schedule(a),
        label_smoothing: a.label_smoothing,
        ema_decay: a.ema,
        seed: a.seed,
        init: a.init.clone(),
        freeze_until: a.freeze_until,
        backbone_lr_scale: a.backbone_lr_scale,
        resolution: a.resolution,
    };
    cfg.optimizer.validate().map_err(|e| e.to_string())?;
    cfg.check(&arch)?;
    Ok((arch, data, cfg, a.out.clone().expect("clap requires --out"), false))
}

pub fn exec_train(a: TrainArgs) -> Result<i32, String> {
    evaluator::set_threads(a.threads);
    let (arch, spec, cfg, dir, resume) = plan(&a)?;
    if !resume && dir.join("model.safetensors").exists() {
        return Err(format!(
            "{}: already holds a run; use --resume {0} to continue it, or another --out",
            dir.display()
        ));
    }
    let data = PreparedData::load(&spec).map_err(|e| e.to_string())?;
    eprintln!(
        "training {} on {} ({} train / {} val images, {} classes{}) for {} epochs into {}",
        arch.name.as_deref().unwrap_or("architecture"),
        spec.source,
        data.train.len(),
        data.val.len(),
        data.train.num_classes(),
        cfg.resolution.map_or(String::new(), |r| format!(", resized to {r}x{r}")),
        cfg.epochs,
        dir.display()
    );
    let m = train_to_dir(&arch, &data, &cfg, &dir, resume, a.quiet).map_err(|e| e.to_string())?;
    print_summary(&m, cfg.epochs, !epoch_lines(a.quiet));
    Ok(0)
}

/// The test accuracy on stdout; with `epoch_table`, the epochs on stderr first (where they
/// were not printed as they finished).
fn print_summary(m: &Metrics, epochs: usize, epoch_table: bool) {
    for e in m.epochs.iter().filter(|_| epoch_table) {
        eprintln!("{}", e.line(epochs));
    }
    if let Some(t) = m.test_accuracy {
        println!(
            "{}",
            serde_json::json!({"test_accuracy": t, "epochs": m.epochs.len(), "wall_seconds": m.wall_seconds})
        );
    }
}

/// Test accuracy of a trained checkpoint on a data set's test split, as JSON.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Data whose test split is scored (same classes as the checkpoint's).
    #[arg(long, default_value = "default")]
    pub data: String,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

pub fn exec_eval(a: EvalArgs) -> Result<i32, String> {
    evaluator::set_threads(a.threads);
    let ckpt = Checkpoint::read(&a.checkpoint).map_err(|e| e.to_string())?;
    let net = ckpt.network(&a.checkpoint).map_err(|e| e.to_string())?;
    let spec = DataSpec {
        source: a.data.clone(),
        train_per_class: None,
        val_per_class: Some(1),
        augment: Some(false),
        seed: 0,
    };
    let mut data = PreparedData::load(&spec).map_err(|e| e.to_string())?;
    let classes = data.test.num_classes();
    if classes != net.arch().classes {
        return Err(format!("{}: {classes} classes, but the checkpoint has {}", a.data, net.arch().classes));
    }
    if let Some(rec) = &ckpt.record.data {
        data.norm = evaluator::data::Normalize { mean: rec.mean.clone(), std: rec.std.clone() };
    }
    let resolution = ckpt.record.train.as_ref().and_then(|t| t.resolution);
    let acc = accuracy(&net, &data.eval_loader(&data.test.clone(), 256, resolution)).map_err(|e| e.to_string())?;
    let out = serde_json::json!({"checkpoint": a.checkpoint, "data": a.data, "test_images": data.test.len(), "test_accuracy": acc});
    println!("{out}");
    Ok(0)
}
