//! `nas latency --validate` and `nas bench train` through the built binary (32 px, so seconds).

mod common;
use common::{nas, tiny_space};
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
    for x in samples {
        let (now, predicted) = (x["now_ms"].as_f64().unwrap(), x["predicted_ms"].as_f64().unwrap());
        let factor = x["reference_ms"].as_f64().unwrap() / v["nominal_reference_ms"].as_f64().unwrap();
        assert!(x["raw_min_ms"].as_f64().unwrap() <= x["raw_median_ms"].as_f64().unwrap(), "{x}");
        assert!((now - predicted * factor).abs() <= 1e-9 * now, "now is nominal at the speed read beside it: {x}");
    }
    assert!(v["load_before"].as_str().is_some() && v["load_after"].as_str().is_some(), "{v}");
    let scores = ["now_vs_raw_median", "nominal_vs_raw_min", "macs_baseline_vs_raw_min", "table_vs_raw_median"];
    for score in scores.into_iter().chain(["macs_baseline_vs_raw_median", "table", "table_vs_raw", "macs_baseline"]) {
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
    assert!(lines[2].trim_start().starts_with("table now") && lines[0].contains("load "), "{text}");
    assert!(lines[5].starts_with("against the raw minimum") && lines[6].contains("table nominal"), "{text}");
    assert!(text.contains("adjusted to the table's machine speed"), "{text}");
    assert!(text.contains("the figure for comparing networks with each other"), "{text}");
}

/// `--predict` gives the nominal time and the time now, scaled by the speed reference timed
/// for a second (`now = nominal * factor`); the second's readings join the table's nominal.
#[test]
fn predict_gives_the_nominal_time_and_the_time_now() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table.json");
    let args = ["latency", "--arch", "mixnet-s", "--predict", "--resolution", "32", "--repeats", "3", "--table"];
    let out = ok(nas(&[&args[..], &[arg(&table), "--json"]].concat()));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let p = &v["predicted"];
    let (nominal, now, factor) = (p["nominal_ms"].as_f64(), p["now_ms"].as_f64(), p["speed"]["factor"].as_f64());
    let (nominal, now, factor) = (nominal.unwrap(), now.unwrap(), factor.unwrap());
    assert!(nominal > 0.0 && factor > 0.0 && (now - nominal * factor).abs() <= 1e-9 * now, "{p}");
    assert_eq!(p["ms"], p["nominal_ms"], "ms stays the nominal time");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
    let readings = saved["reference_readings"]["count"].as_u64().unwrap();
    assert_eq!(p["speed"]["nominal_readings"].as_u64(), Some(readings), "{p}");
    assert!(readings > p["speed"]["readings_now"].as_u64().unwrap(), "the table's readings include the second's: {p}");
    assert_eq!(saved["reference_ms"], p["speed"]["reference_nominal_ms"]);

    let text = String::from_utf8(ok(nas(&[&args[..], &[arg(&table)]].concat())).stdout).unwrap();
    assert!(
        text.contains("ms nominal (this machine at its fastest") && text.contains("ms now (the machine runs"),
        "{text}"
    );
    let speed =
        String::from_utf8(ok(nas(&["latency", "--speed", "--resolution", "32", "--table", arg(&table)])).stdout)
            .unwrap();
    assert!(speed.starts_with("the machine runs ") && speed.contains("ms nominal from"), "{speed}");
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

/// Another device's table keeps the device's own nominal speed: predicting with it, asking for
/// the speed now, or searching with it leaves the file as it was, and offers no "now".
#[test]
fn another_devices_table_is_never_changed_here_and_has_no_now() {
    let dir = tempfile::tempdir().unwrap();
    let (space, local, device) = (tiny_space(dir.path()), dir.path().join("here.json"), dir.path().join("pi.json"));
    let build = ["latency", "--build-table", "--space", arg(&space), "--resolution", "32", "--repeats", "3"];
    ok(nas(&[&build[..], &["--table", arg(&local)]].concat()));
    let mut table: serde_json::Value = serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();
    table["machine"]["cpu"] = "Raspberry Pi 4 Model B Rev 1.4 (ARM Cortex-A72)".into();
    table["machine"]["arch"] = "aarch64".into();
    let bytes = serde_json::to_vec_pretty(&table).unwrap();
    std::fs::write(&device, &bytes).unwrap();

    let run_dir = dir.path().join("run");
    let search = ["search", "--evaluator", "surrogate", "--trials", "4", "--quiet", "--space", arg(&space)];
    let out = ok(nas(&[&search[..], &["--latency-table", arg(&device), "--out", arg(&run_dir)]].concat()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("speed factor") && !stderr.contains("stopwatch"), "nothing timed here: {stderr}");
    let best = run_dir.join("best.json");
    let predict = ["latency", "--predict", "--arch", arg(&best), "--resolution", "32", "--json", "--table"];
    let p: serde_json::Value =
        serde_json::from_slice(&ok(nas(&[&predict[..], &[arg(&device)]].concat())).stdout).unwrap();
    let p = &p["predicted"];
    assert!(p["nominal_ms"].as_f64().is_some_and(|ms| ms > 0.0) && p["measured_on"].is_string(), "{p}");
    assert!(p.get("now_ms").is_none() && p.get("speed").is_none(), "no now for another device: {p}");
    let speed = nas(&["latency", "--speed", "--resolution", "32", "--table", arg(&device)]);
    let line = String::from_utf8_lossy(&speed.stderr);
    assert!(!speed.status.success() && line.trim().lines().count() == 1 && line.contains("another device"), "{line}");
    assert_eq!(std::fs::read(&device).unwrap(), bytes, "the device's table is untouched");
}
