//! `nas latency --validate` and `nas bench train` through the built binary (32 px, so seconds).

mod common;
use common::nas;
use testkit::process::{arg, ok};

#[test]
fn validation_scores_the_table_against_adjusted_and_raw_times() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table.json");
    let args = ["latency", "--validate", "--samples", "3", "--resolution", "32", "--repeats", "5", "--json", "--table"];
    let out = ok(nas(&[&args[..], &[arg(&table)]].concat()));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    for x in samples {
        for field in ["measured_ms", "raw_ms", "raw_median_ms", "reference_ms", "predicted_ms"] {
            assert!(x[field].as_f64().is_some_and(|ms| ms > 0.0), "{field}: {x}");
        }
    }
    for score in ["table_vs_raw_median", "macs_baseline_vs_raw_median", "table", "table_vs_raw", "macs_baseline"] {
        assert!(v[score]["within_10"].as_f64().is_some_and(|w| (0.0..=1.0).contains(&w)), "{score}: {v}");
    }
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
    assert_eq!(saved["format"], "mixnas.latency-table/2");
    assert_eq!(saved["reference_ms"], v["nominal_reference_ms"], "validation reports the table's nominal speed");
    assert!(saved["fit"]["networks"].as_u64().is_some_and(|n| n > 0), "calibrated before validating");

    // The text leads with the raw medians and says when each figure applies.
    let text = ok(nas(&[&args[..args.len() - 2], &["--table", arg(&table)]].concat()));
    let text = String::from_utf8(text.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("against the raw median") && lines[2].trim_start().starts_with("table "), "{text}");
    assert!(text.contains("adjusted to the table's machine speed"), "{text}");
    assert!(text.contains("the figure for comparing networks with each other"), "{text}");
}

/// `nas bench train` times the network `nas train` trains: stride-adapted at <= 64 px (a 4x4
/// final map at 32 px), timm's strides with --no-adapt (1x1), a CIFAR family member as it is.
#[test]
fn bench_train_times_the_adapted_network_unless_told_not_to() {
    let bench = |extra: &[&str]| -> serde_json::Value {
        let args =
            ["bench", "train", "--batch", "2", "--res", "32", "--warmup", "0", "--repeats", "1", "--threads", "1"];
        let out = ok(nas(&[&args[..], extra].concat()));
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON line")
    };
    let adapted = bench(&["--arch", "mixnet-s"]);
    assert_eq!((adapted["adapted"].as_bool(), adapted["final_map"].as_u64()), (Some(true), Some(4)), "{adapted}");
    let as_given = bench(&["--arch", "mixnet-s", "--no-adapt"]);
    assert_eq!((as_given["adapted"].as_bool(), as_given["final_map"].as_u64()), (Some(false), Some(1)), "{as_given}");
    let family = bench(&["--arch", "nas-bench-macro:22212202"]);
    assert_eq!((family["adapted"].as_bool(), family["final_map"].as_u64()), (Some(false), Some(4)), "{family}");
    assert!(family["images_per_s"].as_f64().is_some_and(|v| v > 0.0), "{family}");
}

/// `nas bench eval` times batched inference of the same network `nas bench train` trains, and
/// `--width` scales it first (a half-width MixNet-S has under half the multiply-adds).
#[test]
fn bench_eval_times_the_adapted_network_and_width_scales_it() {
    let bench = |what: &str, extra: &[&str]| -> serde_json::Value {
        let args = ["bench", what, "--batch", "4", "--res", "32", "--warmup", "1", "--repeats", "3", "--threads", "1"];
        let out = ok(nas(&[&args[..], extra].concat()));
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON line")
    };
    let full = bench("eval", &["--arch", "mixnet-s"]);
    assert_eq!(
        (full["what"].as_str(), full["adapted"].as_bool(), full["final_map"].as_u64()),
        (Some("eval"), Some(true), Some(4)),
        "{full}"
    );
    assert_eq!((full["batch"].as_u64(), full["samples"].as_u64()), (Some(4), Some(3)), "{full}");
    let half = bench("eval", &["--arch", "mixnet-s", "--width", "0.5"]);
    assert!(half["mmacs"].as_f64().unwrap() * 2.0 < full["mmacs"].as_f64().unwrap(), "half {half} vs full {full}");
    assert_eq!(bench("train", &["--arch", "mixnet-s", "--width", "0.5"])["width"].as_f64(), Some(0.5));
    let bad = nas(&["bench", "eval", "--width", "0"]);
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "nas: --width: 0 is not allowed; use a multiplier in (0, 4]"
    );
}
