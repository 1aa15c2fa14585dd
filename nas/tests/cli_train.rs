//! `nas train` as a process: each kind of bad input (missing data folder, truncated CIFAR-10
//! batch, a `.jpg` that is no image, `--init` weights of another architecture) is one error line
//! naming the file, exit 2 and no run folder; a run SIGKILLed mid-epoch and resumed with
//! `--resume` ends with the metrics of an uninterrupted run; `nas eval` and `nas infer` see the
//! model and the input size training had.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};
use evaluator::checkpoint::{load_tensors, save_tensors};
use evaluator::data::{resize_image, Interp, Resize, Shape};
use evaluator::train::run_dir::{Checkpoint, Metrics};

use testkit::bytes::noise;
use testkit::cifar::write_noise_batches;
use testkit::process::{arg, ok, run};

fn nas() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nas"))
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(String::from).collect()
}

/// `nas train ARGS --out OUT_DIR --quiet`, expected to fail with exit 2 before writing a
/// checkpoint; returns its stderr lines.
fn refused(args: &[&str], out_dir: &Path) -> Vec<String> {
    let out = run(nas().arg("train").args(args).arg("--out").arg(out_dir).args(["--quiet", "--threads", "2"]));
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    assert!(!out_dir.join("model.safetensors").exists(), "{} holds a checkpoint", out_dir.display());
    assert!(!out_dir.exists(), "{} was left behind", out_dir.display());
    lines
}

#[test]
fn a_missing_data_folder_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-data");
    let lines = refused(&["--arch", "mixnet-s", "--data", arg(&missing)], &tmp.path().join("run"));
    assert_eq!(lines, [format!("nas: {}: data directory not found", missing.display())]);
}

#[test]
fn a_truncated_cifar_batch_is_one_line_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    write_noise_batches(&data, 10);
    // A middle batch, so the message must name the file actually read, not the first or the last.
    let bad = data.join("data_batch_3.bin");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&bad, &bytes).unwrap();
    let lines = refused(&["--arch", "mixnet-s", "--data", arg(&data)], &tmp.path().join("run"));
    let what = "truncated CIFAR-10 batch: 30725 bytes is not a multiple of the 3073-byte record";
    assert_eq!(lines, [format!("nas: {}: {what}", bad.display())]);
}

#[test]
fn a_jpg_that_is_not_an_image_is_one_line_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("folder");
    for (split, n) in [("train", 4), ("test", 2)] {
        for (c, class) in ["cat", "dog"].iter().enumerate() {
            let dir = data.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img =
                    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, c as u8 * 200]));
                img.save(dir.join(format!("{i}.jpg"))).unwrap();
            }
        }
    }
    let bad = data.join("train/dog/2b.jpg");
    std::fs::write(&bad, noise(700, 9)).unwrap();
    let lines = refused(&["--arch", "mixnet-s", "--data", arg(&data)], &tmp.path().join("run"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(&format!("nas: {}: not a readable image: ", bad.display())), "{lines:?}");
}

#[test]
fn init_weights_of_another_architecture_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(weights) = testkit::shared::shared_path("fixtures/timm/mixnet_s.weights.safetensors") else { return };
    let ckpt = tmp.path().join("mixnet-s");
    ok(run(nas().args(["import-timm", "--model", "mixnet_s", "--weights", arg(&weights), "--out", arg(&ckpt)])));
    // Three-channel data, so only the architecture can make the weights not fit.
    let data = tmp.path().join("cifar");
    write_noise_batches(&data, 10);
    let common = ["--init", arg(&ckpt), "--data", arg(&data), "--epochs", "1", "--subset", "2", "--batch", "10"];

    // The checkpoint itself is fine: MixNet-S starts from it (with a new 10-class classifier).
    let fits = tmp.path().join("fits");
    let out = ok(run(nas().args(["train", "--arch", "mixnet-s"]).args(common).arg("--out").arg(&fits).arg("--quiet")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("classifier re-created for 10 classes"));
    assert!(fits.join("model.safetensors").is_file());

    let lines = refused(&[&["--arch", "mixnet-m"], &common[..]].concat(), &tmp.path().join("run"));
    // The refusal comes from building the model, after the "training ..." header line.
    let (errors, other): (Vec<_>, Vec<_>) = lines.iter().partition(|l| l.starts_with("nas: "));
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert!(other.iter().all(|l| l.starts_with("training mixnet-m on ")), "{lines:?}");
    assert_eq!(lines.last(), errors.first().copied(), "the error is the last line");
    let want = format!(
        "nas: --init {}: tensor `stem.conv.weight` has shape [16, 3, 3, 3], this architecture expects \
         [24, 3, 3, 3] (weights of another architecture?)",
        ckpt.display()
    );
    assert_eq!(errors[0], &want);
}

/// The first four blocks of MixNet-S with a narrow head: real layers, a few seconds an epoch.
fn tiny_arch(dir: &Path) -> PathBuf {
    testkit::arch::write_json(&testkit::arch::mixnet_s_prefix(4), dir.join("tiny.json"))
}

fn metrics(dir: &Path) -> Option<Metrics> {
    let bytes = std::fs::read(dir.join("metrics.json")).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

/// What must match between runs: per epoch (epoch, train loss, train accuracy, val accuracy,
/// lr), and the test accuracy.
type Key = (Vec<(usize, f64, f64, Option<f64>, f64)>, Option<f64>);

fn key(m: &Metrics) -> Key {
    let epochs = m.epochs.iter().map(|e| (e.epoch, e.train_loss, e.train_accuracy, e.val_accuracy, e.lr)).collect();
    (epochs, m.test_accuracy)
}

#[test]
fn sigkill_mid_epoch_and_resume_reach_the_uninterrupted_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = tiny_arch(tmp.path());
    let train = |out: &Path| {
        let mut cmd = nas();
        cmd.args(["train", "--arch", arg(&arch), "--data", "default", "--subset", "24", "--epochs", "2"]);
        cmd.args(["--batch", "16", "--lr", "0.05", "--seed", "7", "--threads", "2", "--quiet", "--out", arg(out)]);
        cmd
    };
    let (whole, broken) = (tmp.path().join("whole"), tmp.path().join("broken"));
    let start = Instant::now();
    ok(run(&mut train(&whole)));
    let expected = key(&metrics(&whole).unwrap());
    eprintln!("uninterrupted run: {:?}", start.elapsed());
    assert_eq!((expected.0.len(), expected.1.is_some()), (2, true), "{expected:?}");

    let mut child = train(&broken).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    // The checkpoint is written last after an epoch (after metrics.json).
    while Checkpoint::read(&broken).map_or(true, |c| c.record.epoch == 0) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first epoch was saved");
        assert!(start.elapsed() < Duration::from_secs(120), "no epoch after 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // into the second epoch
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed mid-epoch");
    child.kill().unwrap(); // SIGKILL
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let killed = metrics(&broken).unwrap();
    assert_eq!(key(&killed).0, expected.0[..1], "epoch 1 as the uninterrupted run had it");
    assert_eq!(killed.test_accuracy, None, "killed before the end");
    assert_eq!(Checkpoint::read(&broken).unwrap().record.epoch, 1);

    let out = ok(run(nas().args(["train", "--resume", arg(&broken), "--threads", "2", "--quiet"])));
    let resumed = metrics(&broken).unwrap();
    assert_eq!(key(&resumed), expected);
    // Epoch 1 was kept from the killed run, not trained again (its timing would differ).
    assert_eq!(resumed.epochs[0].seconds, killed.epochs[0].seconds);
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stdout["test_accuracy"].as_f64(), expected.1);
    assert_eq!(model_weights(&broken), model_weights(&whole), "the final weights");
}

/// Every model tensor of the checkpoint in `dir` (no optimiser or EMA state), as f64 values.
fn model_weights(dir: &Path) -> BTreeMap<String, Vec<f64>> {
    let ckpt = Checkpoint::read(dir).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    ckpt.model_tensors().iter().map(|(name, t)| (name.clone(), flat(t))).collect()
}

/// What `nas eval` of the checkpoint reports is what `nas train` reported: with `--ema` too,
/// whose checkpoint serves the averaged weights and BN statistics it was scored with.
#[test]
fn nas_eval_reproduces_the_reported_test_accuracy_with_and_without_ema() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = tiny_arch(tmp.path());
    for ema in [None, Some("0.9")] {
        let dir = tmp.path().join(if ema.is_some() { "ema" } else { "plain" });
        let mut cmd = nas();
        cmd.args(["train", "--arch", arg(&arch), "--data", "default", "--subset", "24", "--epochs", "2"]);
        cmd.args(["--batch", "16", "--seed", "3", "--threads", "2", "--quiet", "--out", arg(&dir)]);
        if let Some(decay) = ema {
            cmd.args(["--ema", decay]);
        }
        let trained: serde_json::Value = serde_json::from_slice(&ok(run(&mut cmd)).stdout).unwrap();
        let eval = ok(run(nas().args(["eval", "--checkpoint", arg(&dir), "--threads", "2"])));
        let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
        assert!(trained["test_accuracy"].is_f64(), "{trained}");
        assert_eq!(eval["test_accuracy"], trained["test_accuracy"], "--ema {ema:?}");
        let raw = Checkpoint::read(&dir).unwrap().section("raw");
        assert_eq!(raw.is_empty(), ema.is_none(), "the training weights are kept apart only with an EMA");
    }
}

/// The line `nas infer IMAGE` prints for `image` (C x H x W bytes), computed here from the
/// logits `nas infer --tensor` gives for it, normalised as the checkpoint's data was.
fn top5_line(ckpt: &Path, image: &[u8], side: usize, label: &Path) -> String {
    let data = Checkpoint::read(ckpt).unwrap().record.data.unwrap();
    let x: Vec<f32> = image.iter().map(|&p| (p as f32 / 255.0 - data.mean[0]) / data.std[0]).collect();
    let x = Tensor::from_vec(x, (1, 1, side, side), &candle_core::Device::Cpu).unwrap();
    let (input, output) = (ckpt.join("input.safetensors"), ckpt.join("logits.safetensors"));
    save_tensors(&input, &[("input".into(), x)], None).unwrap();
    let tensor = ["infer", "--checkpoint", arg(ckpt), "--tensor", arg(&input), "--output", arg(&output)];
    ok(run(nas().args(tensor)));
    let logits = &load_tensors(&output).unwrap().0["logits"];
    let probs = candle_nn::ops::softmax_last_dim(logits).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
    let top: Vec<String> = order.iter().take(5).map(|&i| format!("{} {:.3}", data.class_names[i], probs[i])).collect();
    format!("{}: {}", label.display(), top.join(", "))
}

/// Trained on 28 px Fashion-MNIST resized to 16 px batches, the network gets an image at 16 px.
#[test]
fn nas_infer_resizes_an_image_as_training_batches_were() {
    let tmp = tempfile::tempdir().unwrap();
    let (arch, dir) = (tiny_arch(tmp.path()), tmp.path().join("run"));
    let train = ["train", "--arch", arg(&arch), "--data", "default", "--subset", "12", "--epochs", "1"];
    ok(run(nas().args(train).args(["--batch", "16", "--resolution", "16", "--quiet", "--out", arg(&dir)])));
    assert_eq!(Checkpoint::read(&dir).unwrap().record.data.unwrap().image_size, Some([28, 28]));

    let pixels: Vec<u8> = (0..28 * 28).map(|i| ((i % 28) * 9 + (i / 28) * 5) as u8).collect();
    let png = tmp.path().join("pattern.png");
    image::GrayImage::from_raw(28, 28, pixels.clone()).unwrap().save(&png).unwrap();
    let infer = |extra: &[&str]| {
        let out = ok(run(nas().args(["infer", "--checkpoint", arg(&dir), arg(&png)]).args(extra)));
        String::from_utf8(out.stdout).unwrap().trim_end().to_string()
    };
    let resize = Resize { height: 16, width: 16, interp: Interp::Bilinear };
    let at_16 = resize_image(&pixels, Shape::new(1, 28, 28), resize);
    assert_eq!(infer(&[]), top5_line(&dir, &at_16, 16, &png));
    assert_eq!(infer(&["--resolution", "28"]), top5_line(&dir, &pixels, 28, &png), "--resolution overrides");
    assert_ne!(infer(&[]), infer(&["--resolution", "28"]), "the check tells the sizes apart");
}

#[test]
fn fine_tuning_settings_out_of_range_are_one_line_naming_what_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let init = ["--arch", "mixnet-s", "--init", "never-read.safetensors"];
    let cases: [(&[&str], &str); 4] = [
        (&["--freeze-until", "17"], "nas: --freeze-until 17: the architecture has 16 blocks (allowed: 0 to 16)"),
        (
            &["--backbone-lr-scale", "0"],
            "nas: --backbone-lr-scale 0: must be a finite number > 0 (to freeze, use --freeze-until)",
        ),
        (&["--resolution", "4"], "nas: --resolution 4: allowed 8 to 1024 pixels"),
        (&["--epochs", "0"], "nas: --epochs 0: train for at least 1 epoch (`nas eval` scores a checkpoint as it is)"),
    ];
    for (extra, want) in cases {
        let lines = refused(&[&init[..], extra].concat(), &tmp.path().join("run"));
        assert_eq!(lines, [want], "{extra:?}");
    }
}

/// The tests' stderr is a pipe, not a terminal: one line per epoch as it finishes replaces the
/// bar, not repeated at the end; stdout stays the one JSON line.
#[test]
fn without_a_terminal_each_epoch_is_one_stderr_line() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = tiny_arch(tmp.path());
    let out = ok(run(nas()
        .args(["train", "--arch", arg(&arch), "--data", "default", "--subset", "24", "--epochs", "2"])
        .args(["--batch", "16", "--seed", "7", "--threads", "2", "--out", arg(&tmp.path().join("run"))])));
    let epochs: Vec<String> = stderr_lines(&out).into_iter().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(epochs.len(), 2, "{epochs:?}");
    for (i, line) in epochs.iter().enumerate() {
        assert!(line.starts_with(&format!("epoch {}/2  loss ", i + 1)) && line.contains(" img/s "), "{line}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("{\"epochs\":2,\"test_accuracy\":"), "{stdout}");
}
