//! `nas export` end to end: the ONNX model it writes, run in ONNX Runtime, gives the logits
//! `nas infer` gives for the same checkpoint and input (max abs difference < 1e-4); the timm
//! folder it writes holds what timm needs (built in timm by `bench/timm_roundtrip.py`, not here:
//! CI has no torch).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use evaluator::checkpoint::save_tensors;
use evaluator::export::ort;
use evaluator::model::{adapt_for_resolution, MixNet};
use evaluator::train::run_dir::{save, CheckpointRecord, CHECKPOINT_FORMAT};
use rand::SeedableRng;

mod common;
use common::nas;
use testkit::float::max_abs_diff;
use testkit::process::{arg, ok};

/// `nas export` at `res`, then ONNX Runtime vs `nas infer` on `input.safetensors`.
fn export_vs_infer(python: &str, ckpt: &Path, input: &Path, res: usize, dir: &Path) -> f32 {
    let (model, logits) = (dir.join("model.onnx"), dir.join("logits.safetensors"));
    ok(nas(&["export", "--checkpoint", arg(ckpt), "--onnx", arg(&model), "--resolution", &res.to_string()]));
    ok(nas(&["infer", "--checkpoint", arg(ckpt), "--tensor", arg(input), "--output", arg(&logits)]));
    let x = candle_core::safetensors::load(input, &Device::Cpu).unwrap().remove("input").unwrap();
    let ours = candle_core::safetensors::load(&logits, &Device::Cpu).unwrap().remove("logits").unwrap();
    let theirs = ort::run(python, &model, &x).unwrap();
    max_abs_diff(&ours, &theirs)
}

#[test]
fn exported_timm_mixnet_s_matches_nas_infer_in_onnx_runtime() {
    let Some(fixtures) = testkit::shared::timm_fixtures() else { return };
    let Some(python) = testkit::require::found(ort::find_python()) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mixnet_s");
    let weights = fixtures.join("mixnet_s.weights.safetensors");
    ok(nas(&["import-timm", "--model", "mixnet_s", "--weights", arg(&weights), "--out", arg(&ckpt)]));
    let d = export_vs_infer(&python, &ckpt, &fixtures.join("mixnet_s.io.safetensors"), 96, dir.path());
    eprintln!("mixnet_s: nas export in ONNX Runtime vs nas infer, max abs diff {d:e}");
    assert!(d < 1e-4, "max abs diff {d}");
}

/// A checkpoint as `nas train` writes it at 32x32: a sampled architecture with proxy strides.
fn proxy_checkpoint(dir: &Path) -> PathBuf {
    let space = space::SearchSpace::default_space();
    let source = space.decode(&space.sample(&mut rand::rngs::StdRng::seed_from_u64(5))).unwrap();
    let arch = adapt_for_resolution(&source, 32);
    let net = MixNet::new(&arch, 9, &Device::Cpu).unwrap();
    let record = CheckpointRecord {
        format: CHECKPOINT_FORMAT.into(),
        arch,
        source_arch: Some(source),
        epoch: 0,
        train: None,
        optimizer: None,
        ema_updates: None,
        data: None,
    };
    let ckpt = dir.join("sampled");
    save(&ckpt, &net.state(), &record).unwrap();
    ckpt
}

#[test]
fn exported_proxy_checkpoint_matches_nas_infer_and_needs_its_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = proxy_checkpoint(dir.path());
    let model = dir.path().join("model.onnx");
    let refused = nas(&["export", "--checkpoint", arg(&ckpt), "--onnx", arg(&model)]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2));
    assert!(err.contains("--resolution") && err.lines().count() == 1, "{err}");
    assert!(!model.exists(), "nothing is written on an error");
    let Some(python) = testkit::require::found(ort::find_python()) else { return };
    let input = dir.path().join("input.safetensors");
    let x = Tensor::randn(0f32, 1., (3, 3, 32, 32), &Device::Cpu).unwrap();
    save_tensors(&input, &[("input".into(), x)], None).unwrap();
    let d = export_vs_infer(&python, &ckpt, &input, 32, dir.path());
    eprintln!("sampled (proxy strides, 32 px): nas export in ONNX Runtime vs nas infer, max abs diff {d:e}");
    assert!(d < 1e-4, "max abs diff {d}");
}

#[test]
fn export_of_a_missing_checkpoint_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    let out = nas(&["export", "--checkpoint", arg(&dir.path().join("none")), "--onnx", arg(&model)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("none/model.safetensors") && err.lines().count() == 1, "{err}");
    assert!(!model.exists());
}

fn timm_arch_in(out: &Path) -> space::timm::TimmArch {
    serde_json::from_slice(&std::fs::read(out.join("arch_def.json")).unwrap()).unwrap()
}

#[test]
fn timm_export_of_an_architecture_and_of_a_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mixnet_s");
    ok(nas(&["export", "--arch", "mixnet-s", "--timm", arg(&out)]));
    assert_eq!(timm_arch_in(&out), space::timm::timm_arch(&space::presets::mixnet_s(), "mixnet-s").unwrap());
    assert!(out.join("model.py").is_file());
    assert!(!out.join("model.safetensors").exists(), "an architecture has no weights");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("best.json"), space::presets::mnasnet_a1().to_json()).unwrap();
    let out = dir.path().join("best");
    ok(nas(&["export", "--arch", arg(&run), "--timm", arg(&out), "--resolution", "32"]));
    let t = timm_arch_in(&out);
    assert_eq!(
        (t.arch_def[0][0].as_str(), t.stem_stride, t.input_size),
        ("ds_r1_k3_s1_e1_c16_noskip", 1, Some([3, 32, 32]))
    );
    assert_eq!(t.stride_changes.len(), 2, "stem and the first stride-2 block");
}

#[test]
fn timm_export_of_a_checkpoint_carries_its_weights_in_timm_names() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = proxy_checkpoint(dir.path());
    let out = dir.path().join("timm");
    ok(nas(&["export", "--checkpoint", arg(&ckpt), "--timm", arg(&out)]));
    let t = timm_arch_in(&out);
    assert_eq!(t.stem_stride, 1, "trained with proxy strides");
    assert_eq!(t.stride_changes[0].at, "stem");
    let record = evaluator::train::run_dir::Checkpoint::read(&ckpt).unwrap();
    let theirs = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    let ours = record.model_tensors();
    assert_eq!(theirs.len(), ours.len());
    assert_eq!(max_abs_diff(&theirs["conv_stem.weight"], &ours["stem.conv.weight"]), 0.0);
    assert_eq!(max_abs_diff(&theirs["classifier.weight"], &ours["classifier.weight"]), 0.0);
}

#[test]
fn timm_export_refuses_what_timm_cannot_build_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("timm");
    let refused = nas(&["export", "--arch", "nas-bench-macro:02111212", "--timm", arg(&out)]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2));
    assert!(err.contains("nas-bench-macro:02111212: blocks[0].kernels:") && err.lines().count() == 1, "{err}");
    assert!(!out.exists(), "nothing is written on an error");
    let refused = nas(&["export", "--arch", "mixnet-s", "--onnx", arg(&dir.path().join("m.onnx"))]);
    assert_eq!(refused.status.code(), Some(2), "ONNX needs weights");
    let refused = nas(&["export", "--arch", arg(dir.path()), "--timm", arg(&out)]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("a folder without best.json"), "{err}");
}
