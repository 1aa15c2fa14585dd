//! `nas latency --validate` through the built binary (32 px, so it takes seconds).

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
