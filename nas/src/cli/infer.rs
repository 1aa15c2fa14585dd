//! `nas import-timm` (timm MixNet weights -> a mixnas checkpoint) and `nas infer` (eval-mode
//! logits of a stored tensor, or the top-5 classes of images).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use clap::Args;
use evaluator::checkpoint::{load_tensors, save_tensors};
use evaluator::data::{resize_image, Interp, Resize, Shape};
use evaluator::train::run_dir::{save, Checkpoint, CheckpointRecord, CHECKPOINT_FORMAT};

/// Imports timm MixNet weights (.safetensors in timm's names) as a mixnas checkpoint.
#[derive(Args, Debug)]
pub struct ImportTimmArgs {
    /// timm model name: mixnet_s, mixnet_m, mixnet_l, tf_mixnet_s, tf_mixnet_m, tf_mixnet_l
    /// (tf_ = TF SAME padding and BN eps 1e-3).
    #[arg(long)]
    pub model: String,
    /// The state dict as .safetensors.
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn exec_import_timm(a: ImportTimmArgs) -> Result<i32, String> {
    let arch = space::presets::timm_model(&a.model)
        .ok_or_else(|| format!("--model {}: not a timm MixNet; use mixnet_s|m|l or tf_mixnet_s|m|l", a.model))?;
    let tensors = evaluator::timm::load_timm(&a.weights, &arch).map_err(|e| e.to_string())?;
    let net = evaluator::model::MixNet::new(&arch, 0, &Device::Cpu).map_err(|e| e.to_string())?;
    net.load_named(&tensors).map_err(|e| format!("{}: {e}", a.weights.display()))?;
    let record = CheckpointRecord {
        format: CHECKPOINT_FORMAT.into(),
        arch: arch.clone(),
        source_arch: Some(arch),
        epoch: 0,
        train: None,
        optimizer: None,
        ema_updates: None,
        data: None,
    };
    save(&a.out, &net.state(), &record).map_err(|e| e.to_string())?;
    eprintln!("wrote {} ({} parameters) to {}", a.model, net.param_count(), a.out.display());
    Ok(0)
}

/// Runs a checkpoint in eval mode on a stored tensor or on image files.
#[derive(Args, Debug)]
pub struct InferArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A .safetensors file holding `input` [N, C, H, W] (f32, already normalised).
    #[arg(long, requires = "output", conflicts_with = "images")]
    pub tensor: Option<PathBuf>,
    /// Where to write `logits` [N, classes].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Images to classify (prints the top-5 classes of each).
    #[arg(required_unless_present = "tensor")]
    pub images: Vec<PathBuf>,
    /// Image size fed to the network [default: the size training batches had, or 224 for
    /// imported weights].
    #[arg(long)]
    pub resolution: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

pub fn exec_infer(a: InferArgs) -> Result<i32, String> {
    evaluator::set_threads(a.threads);
    let ckpt = Checkpoint::read(&a.checkpoint).map_err(|e| e.to_string())?;
    let net = ckpt.network(&a.checkpoint).map_err(|e| e.to_string())?;
    // The frozen network `nas eval` scores and `nas latency` times, not the training ops.
    let frozen = net.eval_net().map_err(|e| e.to_string())?;
    let forward = |x: &Tensor| evaluator::on_pool(|| frozen.forward(x));
    if let Some(path) = &a.tensor {
        let (tensors, _) = load_tensors(path).map_err(|e| e.to_string())?;
        let x = tensors.get("input").ok_or_else(|| format!("{}: no tensor named `input`", path.display()))?;
        let logits = forward(x).map_err(|e| format!("{}: {e}", path.display()))?;
        let out = a.output.expect("clap requires --output");
        save_tensors(&out, &[("logits".into(), logits)], None).map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let (mean, std, names) = match &ckpt.record.data {
        Some(d) => (d.mean.clone(), d.std.clone(), d.class_names.clone()),
        // Imported ImageNet weights: timm's normalisation; class indices stand for names.
        None => (
            vec![0.485, 0.456, 0.406],
            vec![0.229, 0.224, 0.225],
            (0..net.arch().classes).map(|i| format!("class {i}")).collect(),
        ),
    };
    let sizes = match a.resolution {
        Some(r) => vec![[r, r]],
        None => ckpt.record.training_sizes(),
    };
    for path in &a.images {
        let x = image_tensor(path, net.arch().stem.in_ch, &sizes, &mean, &std)?;
        let logits = forward(&x).map_err(|e| e.to_string())?;
        let probs = candle_nn::ops::softmax_last_dim(&logits).and_then(|p| p.flatten_all()?.to_vec1::<f32>());
        let probs = probs.map_err(|e| e.to_string())?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        let top: Vec<String> = order.iter().take(5).map(|&i| format!("{} {:.3}", names[i], probs[i])).collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    Ok(0)
}

/// Decodes an image into a `[1, C, H, W]` tensor (grey or RGB as the network wants), resized
/// through `sizes` with the data module's bilinear resampling and normalised as it does.
fn image_tensor(
    path: &PathBuf,
    channels: usize,
    sizes: &[[usize; 2]],
    mean: &[f32],
    std: &[f32],
) -> Result<Tensor, String> {
    let img = image::open(path).map_err(|e| format!("{}: not a readable image ({e})", path.display()))?;
    let mut shape = Shape::new(channels, img.height() as usize, img.width() as usize);
    let raw: Vec<u8> = if channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    let plane = shape.height * shape.width;
    let mut pixels: Vec<u8> = (0..channels * plane).map(|i| raw[(i % plane) * channels + i / plane]).collect();
    for &[height, width] in sizes {
        if [height, width] != [shape.height, shape.width] {
            pixels = resize_image(&pixels, shape, Resize { height, width, interp: Interp::Bilinear });
            shape = Shape::new(channels, height, width);
        }
    }
    let plane = shape.height * shape.width;
    let data = pixels.iter().enumerate().map(|(i, &p)| (p as f32 / 255.0 - mean[i / plane]) / std[i / plane]);
    Tensor::from_vec(data.collect(), (1, channels, shape.height, shape.width), &Device::Cpu).map_err(|e| e.to_string())
}
