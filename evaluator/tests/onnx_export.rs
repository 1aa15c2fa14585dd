//! ONNX export checked in ONNX Runtime: MixNet-S with timm's weights (PyTorch and TF SAME
//! padding) and architectures sampled from the default search space with random weights and
//! random BN statistics must give the logits of our served network (`MixNet::eval_net`) to max abs difference < 1e-4.
//! Needs a Python with onnxruntime and numpy (see `evaluator::export::ort`).

use std::path::Path;

use candle_core::{Device, Tensor};
use evaluator::export::{onnx, ort};
use evaluator::model::{adapt_for_resolution, MixNet};
use rand::{Rng, SeedableRng};
use space::{Arch, Padding, SearchSpace};
use testkit::float::max_abs_diff;
use testkit::shared::timm_fixtures;

const TOLERANCE: f32 = 1e-4;

/// Exports `net` at the input's resolution, runs it in ONNX Runtime and returns the max abs
/// difference from our logits.
fn onnx_vs_ours(python: &str, net: &MixNet, input: &Tensor, dir: &Path, name: &str) -> f32 {
    let path = dir.join(format!("{name}.onnx"));
    onnx::write(net, input.dims()[3], &path).unwrap();
    let theirs = ort::run(python, &path, input).unwrap();
    let ours = net.eval_net().unwrap().forward(input).unwrap();
    let d = max_abs_diff(&ours, &theirs);
    let scale = max_abs_diff(&ours, &ours.zeros_like().unwrap());
    eprintln!("{name}: ONNX Runtime vs EvalNet max abs diff {d:e} (logits up to {scale:.3})");
    d
}

#[test]
fn timm_mixnet_s_runs_in_onnx_runtime_with_our_logits() {
    let (Some(python), Some(dir)) = (testkit::require::found(ort::find_python()), timm_fixtures()) else { return };
    let out = tempfile::tempdir().unwrap();
    for model in ["mixnet_s", "tf_mixnet_s"] {
        let arch = space::presets::timm_model(model).unwrap();
        let net = MixNet::new(&arch, 0, &Device::Cpu).unwrap();
        let weights = evaluator::timm::load_timm(&dir.join(format!("{model}.weights.safetensors")), &arch).unwrap();
        net.load_named(&weights).unwrap();
        let io = candle_core::safetensors::load(dir.join(format!("{model}.io.safetensors")), &Device::Cpu).unwrap();
        let d = onnx_vs_ours(&python, &net, &io["input"], out.path(), model);
        assert!(d < TOLERANCE, "{model}: max abs diff {d}");
    }
}

/// Non-trivial BN: random affine, then running statistics set to one training batch's
/// (momentum 1), so a wrong epsilon, fold or channel slice shows while activations stay sane.
fn calibrate_batch_norms(net: &MixNet, res: usize, rng: &mut impl Rng) {
    for n in net.named().iter().filter(|n| n.name.contains("bn.") || n.name.contains(".bn")) {
        let (lo, hi) = match n.name.rsplit('.').next().unwrap() {
            "weight" => (0.5f32, 1.5f32),
            "bias" => (-0.5, 0.5),
            _ => continue,
        };
        let values: Vec<f32> = (0..n.var.elem_count()).map(|_| rng.gen_range(lo..hi)).collect();
        n.var.set(&Tensor::from_vec(values, n.var.dims(), &Device::Cpu).unwrap()).unwrap();
    }
    let batch = (Tensor::randn(0f32, 1., (8, 3, res, res), &Device::Cpu).unwrap() + 0.3).unwrap();
    net.forward_train(&batch, rng).unwrap();
}

/// The default space's own 1000 classes keep random logits at a trained net's scale (a few units).
fn sampled_arch(seed: u64) -> Arch {
    let space = SearchSpace::default_space();
    let choices = space.sample(&mut rand::rngs::StdRng::seed_from_u64(seed));
    space.decode(&choices).unwrap()
}

#[test]
fn sampled_architectures_run_in_onnx_runtime_with_our_logits() {
    let Some(python) = testkit::require::found(ort::find_python()) else { return };
    let out = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // As `nas train` builds it at 32x32 (proxy strides), and at 72x72 with TF SAME padding,
    // dilated kernels, exponential partitions and an uneven grouped 1x1 (Split/Concat path).
    let mut proxy = adapt_for_resolution(&sampled_arch(1), 32);
    proxy.bn.momentum = 1.0;
    let mut variant = sampled_arch(2);
    variant.padding = Padding::TfSame;
    variant.bn.eps = 1e-3;
    variant.bn.momentum = 1.0;
    for b in variant.blocks.iter_mut() {
        b.dilated = true;
        b.partition = space::Partition::Exponential;
    }
    let expanded = variant.blocks.iter_mut().find(|b| b.has_expansion() && b.in_ch % 3 != 0).expect("such a block");
    expanded.expand_groups = 3;
    // NAS-Bench-Macro's plain stride-2 1x1 conv layers, with and without blocks around them.
    let mut macro_net = space::family::nas_bench_macro("01201021").unwrap();
    macro_net.bn.momentum = 1.0;
    let cases = [("sampled-proxy", proxy, 32), ("sampled-tf-same", variant, 72), ("nas-bench-macro", macro_net, 32)];
    for (name, arch, res) in cases {
        let net = MixNet::new(&arch, 3, &Device::Cpu).unwrap();
        calibrate_batch_norms(&net, res, &mut rng);
        let input = Tensor::randn(0f32, 1., (2, 3, res, res), &Device::Cpu).unwrap();
        let d = onnx_vs_ours(&python, &net, &input, out.path(), name);
        assert!(d < TOLERANCE, "{name}: max abs diff {d}");
    }
}
