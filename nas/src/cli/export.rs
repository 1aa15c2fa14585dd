//! `nas export`: a checkpoint as an ONNX model (opset 17, BN folded) for deployment, or a
//! checkpoint or architecture as a folder that PyTorch builds with timm's own builder.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use evaluator::export::onnx;
use evaluator::export::timm::{self, TimmExport};
use evaluator::model::adapt_for_resolution;
use evaluator::train::run_dir::Checkpoint;
use space::timm::{stride_changes, timm_arch, TimmArch};

/// Writes the eval-mode network of a checkpoint as ONNX, with its trained weights; or a
/// checkpoint (weights included) or an architecture (timm's initialisation) for timm.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("from").required(true).args(["checkpoint", "arch"])))]
#[command(group(ArgGroup::new("to").required(true).args(["onnx", "timm"])))]
pub struct ExportArgs {
    /// A `nas train` or `nas import-timm` folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// An architecture without weights (with --timm): a file, a preset, nas-bench-macro:CODE, or
    /// a `nas search` run folder (its best.json).
    #[arg(long, value_name = "FILE|PRESET|RUN_DIR", conflicts_with = "onnx")]
    pub arch: Option<String>,
    /// Where to write the model (`input` [N, C, R, R] -> `logits` [N, classes]).
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// A new folder for timm: arch_def.json, model.py and (for a checkpoint) model.safetensors.
    #[arg(long, value_name = "DIR")]
    pub timm: Option<PathBuf>,
    /// ONNX: input size R the graph is built for (it fixes TF SAME pads) [default: 224;
    /// checkpoints trained at 64 px or less, with proxy strides, need it given]. timm with
    /// --arch: the network as `nas train --resolution R` builds it (proxy strides at 64 or less).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub resolution: Option<u32>,
}

pub fn exec(a: ExportArgs) -> Result<i32, String> {
    match (&a.checkpoint, &a.onnx, &a.timm) {
        (Some(dir), Some(file), _) => to_onnx(dir, file, a.resolution),
        (Some(dir), None, Some(out)) => checkpoint_to_timm(dir, out),
        (None, _, Some(out)) => arch_to_timm(a.arch.as_deref().expect("clap requires --arch"), a.resolution, out),
        _ => unreachable!("clap requires one of --onnx, --timm and one of --checkpoint, --arch"),
    }
}

fn to_onnx(dir: &Path, file: &Path, resolution: Option<u32>) -> Result<i32, String> {
    let ckpt = Checkpoint::read(dir).map_err(|e| e.to_string())?;
    let proxy = ckpt.record.source_arch.as_ref().is_some_and(|s| s.stem.stride != ckpt.record.arch.stem.stride);
    let resolution = match (resolution, proxy) {
        (Some(r), _) => r as usize,
        (None, false) => 224,
        (None, true) => {
            return Err(format!(
                "{}: trained at 64 px or less (proxy strides); give --resolution, e.g. the training image size",
                dir.display()
            ))
        }
    };
    let net = ckpt.network(dir).map_err(|e| e.to_string())?;
    onnx::write(&net, resolution, file).map_err(|e| format!("--resolution {resolution}: {e}"))?;
    let arch = net.arch();
    eprintln!(
        "wrote {} (opset {}, input [N, {}, {resolution}, {resolution}], {} classes, {} parameters, BN folded)",
        file.display(),
        onnx::OPSET,
        arch.stem.in_ch,
        arch.classes,
        net.param_count()
    );
    Ok(0)
}

/// The network as trained (its strides, classes and data), with its served weights.
fn checkpoint_to_timm(dir: &Path, out: &Path) -> Result<i32, String> {
    let ckpt = Checkpoint::read(dir).map_err(|e| e.to_string())?;
    let record = &ckpt.record;
    let mut arch = timm_arch(&record.arch, &dir.display().to_string()).map_err(|e| e.to_string())?;
    if let Some(designed) = &record.source_arch {
        arch.stride_changes = stride_changes(designed, &record.arch);
    }
    if let Some(&[height, width]) = record.training_sizes().last() {
        arch.input_size = Some([record.arch.stem.in_ch, height, width]);
    }
    if let Some(data) = &record.data {
        (arch.mean, arch.std) = (Some(data.mean.clone()), Some(data.std.clone()));
    }
    let weights = timm::timm_tensors(&record.arch, &ckpt.model_tensors())
        .map_err(|e| format!("{}: {e}", evaluator::train::run_dir::model_path(dir).display()))?;
    write(TimmExport { arch, weights: Some(weights) }, out, record.arch.blocks.len())
}

/// The architecture alone; timm initialises the weights.
fn arch_to_timm(spec: &str, resolution: Option<u32>, out: &Path) -> Result<i32, String> {
    let designed = load_arch(spec)?;
    let built = match resolution {
        Some(r) => adapt_for_resolution(&designed, r as usize),
        None => designed.clone(),
    };
    let mut arch = timm_arch(&built, spec).map_err(|e| e.to_string())?;
    arch.stride_changes = stride_changes(&designed, &built);
    if let Some(r) = resolution.map(|r| r as usize) {
        arch.input_size = Some([built.stem.in_ch, r, r]);
    }
    write(TimmExport { arch, weights: None }, out, built.blocks.len())
}

/// `--arch` as `nas train --arch` reads it, or a `nas search` run folder's best.json.
fn load_arch(spec: &str) -> Result<space::Arch, String> {
    let dir = Path::new(spec);
    if !dir.is_dir() {
        return space::load_arch(spec).map_err(|e| e.to_string());
    }
    let best = dir.join("best.json");
    if !best.is_file() {
        return Err(format!(
            "{spec}: a folder without best.json (a `nas search` run has one once a trial has a reward; a `nas train` folder goes with --checkpoint)"
        ));
    }
    space::load_arch(&best.display().to_string()).map_err(|e| e.to_string())
}

fn write(export: TimmExport, out: &Path, blocks: usize) -> Result<i32, String> {
    timm::write(&export, out).map_err(|e| e.to_string())?;
    let a: &TimmArch = &export.arch;
    let weights = match &export.weights {
        Some(w) => format!(", model.safetensors ({} tensors in timm's names)", w.len()),
        None => String::new(),
    };
    eprintln!(
        "wrote {}: arch_def.json ({} stages, {blocks} blocks), model.py{weights} (python {0}/model.py prints the parameter count)",
        out.display(),
        a.arch_def.len()
    );
    Ok(0)
}
