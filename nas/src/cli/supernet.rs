//! `nas supernet train`: a weight-sharing supernet over a search space, for `--evaluator
//! supernet:DIR` in `nas search` and `nas fidelity`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use evaluator::supernet::train::{train_to_dir, SupernetConfig};
use evaluator::train::prepared::{DataSpec, PreparedData};
use space::SearchSpace;

#[derive(Args, Debug)]
pub struct SupernetArgs {
    #[command(subcommand)]
    pub command: SupernetCommand,
}

#[derive(Subcommand, Debug)]
pub enum SupernetCommand {
    /// Train a supernet by uniform single-path sampling, checkpointing after every epoch.
    Train(SupernetTrainArgs),
}

#[derive(Args, Debug)]
pub struct SupernetTrainArgs {
    /// Search space: `default` (the MixNet space) or a space file
    /// (configs/space-nas-bench-macro.json).
    #[arg(long, default_value = "default")]
    pub space: String,
    /// Data, as for `nas train`; the validation hold-out is what candidates are scored on.
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
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Peak learning rate (SGD, Nesterov momentum 0.9, one-cycle schedule).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Training side in pixels [default: the space's resolution, else 32].
    #[arg(long, value_name = "R")]
    pub resolution: Option<usize>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (supernet.safetensors, supernet.json, metrics.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the killed or finished supernet in --out (same settings required).
    #[arg(long)]
    pub resume: bool,
    /// No progress: neither the bar (on a terminal) nor the line per epoch (otherwise).
    #[arg(long)]
    pub quiet: bool,
}

pub fn exec(a: SupernetArgs) -> Result<i32, String> {
    let SupernetCommand::Train(a) = a.command;
    evaluator::set_threads(a.threads);
    if a.epochs == 0 || a.batch == 0 {
        return Err(format!("--epochs {} --batch {}: both must be at least 1", a.epochs, a.batch));
    }
    let checkpoint = evaluator::supernet::train::checkpoint_path(&a.out);
    if !a.resume && checkpoint.exists() {
        return Err(format!(
            "{}: a supernet is here already: pass --resume to continue it, or choose another --out",
            checkpoint.display()
        ));
    }
    let space = SearchSpace::from_spec(&a.space).map_err(|e| e.to_string())?;
    let resolution = a.resolution.or(space.resolution).unwrap_or(32);
    let spec = DataSpec {
        source: a.data.clone(),
        train_per_class: a.subset,
        val_per_class: a.val_per_class,
        augment: None,
        seed: a.seed,
    };
    let data = PreparedData::load(&spec).map_err(|e| e.to_string())?;
    let cfg = SupernetConfig::one_cycle(a.epochs, a.batch, a.lr, resolution, a.seed);
    eprintln!(
        "supernet over {} ({} decisions) on {} ({} train / {} val images) at {resolution}x{resolution}, {} epochs into {}",
        space.source,
        space.decisions.len(),
        a.data,
        data.train.len(),
        data.val.len(),
        a.epochs,
        a.out.display()
    );
    let metrics = train_to_dir(&space, &data, &cfg, &a.out, a.resume, a.quiet).map_err(|e| e.to_string())?;
    let last = metrics.epochs.last().map(|e| e.line(a.epochs)).unwrap_or_default();
    eprintln!("done: {last}");
    Ok(0)
}
