//! `nas export`: a checkpoint as an ONNX model (opset 17, BN folded) for deployment.

use std::path::PathBuf;

use clap::Args;
use evaluator::export::onnx;
use evaluator::train::run_dir::Checkpoint;

/// Writes the eval-mode network of a checkpoint as ONNX, with its trained weights.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where to write the model (`input` [N, C, R, R] -> `logits` [N, classes]).
    #[arg(long)]
    pub onnx: PathBuf,
    /// Input size R the graph is built for (it fixes TF SAME pads) [default: 224; checkpoints
    /// trained at 64 px or less, with proxy strides, need it given].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub resolution: Option<u32>,
}

pub fn exec(a: ExportArgs) -> Result<i32, String> {
    let ckpt = Checkpoint::read(&a.checkpoint).map_err(|e| e.to_string())?;
    let proxy = ckpt.record.source_arch.as_ref().is_some_and(|s| s.stem.stride != ckpt.record.arch.stem.stride);
    let resolution = match (a.resolution, proxy) {
        (Some(r), _) => r as usize,
        (None, false) => 224,
        (None, true) => {
            return Err(format!(
                "{}: trained at 64 px or less (proxy strides); give --resolution, e.g. the training image size",
                a.checkpoint.display()
            ))
        }
    };
    let net = ckpt.network(&a.checkpoint).map_err(|e| e.to_string())?;
    onnx::write(&net, resolution, &a.onnx).map_err(|e| format!("--resolution {resolution}: {e}"))?;
    let arch = net.arch();
    eprintln!(
        "wrote {} (opset {}, input [N, {}, {resolution}, {resolution}], {} classes, {} parameters, BN folded)",
        a.onnx.display(),
        onnx::OPSET,
        arch.stem.in_ch,
        arch.classes,
        net.param_count()
    );
    Ok(0)
}
