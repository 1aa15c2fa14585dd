//! NAS-Bench-Macro through the built binary: `nas inspect nas-bench-macro:CODE` against the
//! benchmark's counts, `nas fidelity` with the table and surrogate evaluators (statistics that
//! can be recomputed from the rows, resume after a torn journal, one-line errors).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::nas;

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn dev_file() -> Option<PathBuf> {
    testkit::shared::shared_path("benchmarks/nas-bench-macro/cifar10-dev.json")
}

fn stderr_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "expected exit 2: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!err.contains('\n'), "not one line: {err}");
    err
}

#[test]
fn inspect_gives_the_benchmarks_counts_and_code_at_32_px() {
    let Some(dev) = dev_file() else { return };
    let truth: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dev).unwrap()).unwrap();
    for code in ["00000000", "22212202", "12012021"] {
        let Some(entry) = truth.get(code) else { continue };
        let v = stdout_json(&nas(&["inspect", &format!("nas-bench-macro:{code}"), "--json"]));
        assert_eq!(v["resolution"], 32, "{code}");
        assert_eq!(v["nas_bench_macro"], code);
        assert_eq!((&v["params"], &v["macs"]), (&entry["params"], &entry["flops"]), "{code}");
    }
    let table = nas(&["inspect", "nas-bench-macro:00000000"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("at 32x32") && text.contains("NAS-Bench-Macro code 00000000"), "{text}");
    assert!(text.contains("1x1 conv"), "{text}");
    let err = stderr_line(&nas(&["inspect", "nas-bench-macro:0120"]));
    assert_eq!(err, r#"nas: nas-bench-macro:0120: code "0120" has 4 digits; expected 8 of 0, 1, 2"#);
}

fn fidelity(dev: &Path, evaluator: &str, out: &Path, samples: &str) -> Output {
    let args = ["fidelity", "--truth", dev.to_str().unwrap(), "--evaluator", evaluator, "--samples", samples];
    nas(&[&args[..], &["--seed", "3", "--out", out.to_str().unwrap(), "--json"]].concat())
}

#[test]
fn the_truth_itself_ranks_perfectly_and_the_rows_give_back_the_statistics() {
    let Some(dev) = dev_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("table");
    let v = stdout_json(&fidelity(&dev, &format!("table:{}", dev.display()), &out, "40"));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 40);
    assert_eq!(v["evaluator"]["kendall_tau"]["value"], 1.0);
    assert_eq!(v["evaluator"]["top10_recall"]["value"], 1.0);
    for r in rows {
        assert_eq!(r["score"].as_f64().unwrap() * 100.0, r["truth"].as_f64().unwrap());
    }
    // The MACs baseline, recomputed from the rows by a plain O(n^2) tau-b.
    let column = |f: &str| rows.iter().map(|r| r[f].as_f64().unwrap()).collect::<Vec<f64>>();
    let (macs, truth) = (column("macs"), column("truth"));
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0.0f64, 0.0, 0.0, 0.0);
    for i in 0..macs.len() {
        for j in i + 1..macs.len() {
            let (dx, dy) = (macs[i] - macs[j], truth[i] - truth[j]);
            match (dx == 0.0, dy == 0.0) {
                (true, true) => {}
                (true, false) => ties_x += 1.0,
                (false, true) => ties_y += 1.0,
                _ if (dx > 0.0) == (dy > 0.0) => concordant += 1.0,
                _ => discordant += 1.0,
            }
        }
    }
    let tau =
        (concordant - discordant) / ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)).sqrt();
    let reported = v["baselines"]["macs"]["kendall_tau"]["value"].as_f64().unwrap();
    assert!((reported - tau).abs() < 1e-12, "{reported} vs {tau}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved, v);
    let plots = dir.path().join("plots");
    let report = nas(&["report", out.to_str().unwrap(), "--plots", plots.to_str().unwrap()]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Score vs truth") && html.contains("Kendall tau"), "{html}");
    let scatter = std::fs::read_to_string(plots.join("score-truth.svg")).unwrap();
    assert_eq!(scatter.matches("<circle").count(), 40, "one dot per network");
}

#[test]
fn a_killed_run_resumes_from_its_journal_and_other_settings_are_refused() {
    let Some(dev) = dev_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("surrogate");
    let whole = stdout_json(&fidelity(&dev, "surrogate", &out, "12"));
    // As if killed while writing the 6th row: five whole lines and a torn one.
    let journal = out.join("rows.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&journal, format!("{}\n{}", lines[..5].join("\n"), &lines[5][..20])).unwrap();
    std::fs::remove_file(out.join("results.json")).unwrap();
    let resumed = stdout_json(&fidelity(&dev, "surrogate", &out, "12"));
    let strip = |v: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        v["rows"].as_array().unwrap().iter().map(|r| (r["code"].clone(), r["score"].clone())).collect()
    };
    assert_eq!(strip(&resumed), strip(&whole));
    assert_eq!(resumed["evaluator"], whole["evaluator"]);
    assert_eq!(std::fs::read_to_string(&journal).unwrap().lines().count(), 12);
    let err = stderr_line(&fidelity(&dev, "surrogate", &out, "13"));
    assert!(err.contains("fidelity.json: samples: this folder was run with 12, not 13"), "{err}");
}

#[test]
fn bad_truth_files_and_evaluators_are_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.json");
    std::fs::write(&short, r#"{"0120": {"mean_acc": 90, "flops": 1}}"#).unwrap();
    let out = dir.path().join("run");
    let err = stderr_line(&fidelity(&short, "surrogate", &out, "2"));
    assert_eq!(err, format!(r#"nas: {}: code "0120" has 4 digits; expected 8 of 0, 1, 2"#, short.display()));
    let no_field = dir.path().join("nofield.json");
    std::fs::write(&no_field, r#"{"01201021": {"acc": 90, "flops": 1}}"#).unwrap();
    let err = stderr_line(&fidelity(&no_field, "surrogate", &out, "2"));
    assert!(err.ends_with(r#"entry "01201021" has no field "mean_acc"; its numeric fields are acc, flops"#), "{err}");
    let dev = dir.path().join("dev.json");
    std::fs::write(&dev, r#"{"01201021": {"mean_acc": 90, "flops": 1}, "01201022": {"mean_acc": 91, "flops": 2}}"#)
        .unwrap();
    let missing = dir.path().join("device-table.json");
    let args = ["fidelity", "--truth", dev.to_str().unwrap(), "--evaluator", "surrogate", "--samples", "2"];
    let err = stderr_line(&nas(&[
        &args[..],
        &["--latency-table", missing.to_str().unwrap(), "--out", out.to_str().unwrap()],
    ]
    .concat()));
    assert!(err.starts_with(&format!("nas: --latency-table {}: no such file", missing.display())), "{err}");
    let err = stderr_line(&fidelity(&no_field, "magic", &out, "2"));
    assert!(err.contains("unknown evaluator `magic`"), "{err}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

/// `--space` takes the family's name or its space file (either resumes the other's folder) and
/// refuses any other space in one line; without `--evaluator` the config's evaluator scores.
#[test]
fn the_space_file_is_the_family_and_the_config_names_the_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev.json");
    std::fs::write(&dev, r#"{"01201021": {"mean_acc": 90, "flops": 1}, "22201022": {"mean_acc": 91, "flops": 2}}"#)
        .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"evaluator": "surrogate"}"#).unwrap();
    let (dev, config) = (dev.to_str().unwrap(), config.to_str().unwrap());
    let run = |space: &str, out: &Path| {
        let args = ["fidelity", "--truth", dev, "--config", config, "--space", space, "--samples", "2"];
        nas(&[&args[..], &["--out", out.to_str().unwrap(), "--json"]].concat())
    };
    let out = dir.path().join("by-file");
    let v = stdout_json(&run(&space_file(), &out));
    assert_eq!((&v["config"]["evaluator"], &v["config"]["space"]), (&"surrogate".into(), &"nas-bench-macro".into()));
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    assert_eq!(stdout_json(&run("nas-bench-macro", &out))["rows"], v["rows"]);
    let refused = dir.path().join("refused");
    let allowed =
        "nas fidelity scores nas-bench-macro codes: use --space nas-bench-macro or configs/space-nas-bench-macro.json";
    let mixnet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/space-mixnet.json");
    for space in ["default", mixnet.to_str().unwrap()] {
        let err = stderr_line(&run(space, &refused));
        assert!(err.starts_with(&format!("nas: --space {space}: space ")) && err.ends_with(allowed), "{err}");
    }
    let err = stderr_line(&run("no-such-space.json", &refused));
    assert!(err.starts_with("nas: --space no-such-space.json: ") && err.ends_with(allowed), "{err}");
    assert!(!refused.exists(), "a refused run wrote {}", refused.display());
}

#[test]
fn nas_train_trains_a_benchmark_network_with_its_own_strides() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train");
    let args = ["train", "--arch", "nas-bench-macro:12012021", "--epochs", "1", "--subset", "20", "--out"];
    let trained = nas(&[&args[..], &[out.to_str().unwrap()]].concat());
    let summary: serde_json::Value = serde_json::from_slice(trained.stdout.trim_ascii()).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&trained.stderr));
    });
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint.json")).unwrap()).unwrap();
    let strides: Vec<u64> =
        checkpoint["arch"]["blocks"].as_array().unwrap().iter().map(|b| b["stride"].as_u64().unwrap()).collect();
    assert_eq!(strides, [2, 1, 2, 1, 1, 2, 1, 1], "not stride-adapted: the network is the benchmark's");
    assert_eq!(checkpoint["arch"]["stem"]["stride"], 1);
    let eval = stdout_json(&nas(&["eval", "--checkpoint", out.to_str().unwrap()]));
    assert_eq!(eval["test_accuracy"], summary["test_accuracy"]);
}

#[test]
fn synflow_scores_keep_their_raw_value_and_order() {
    let Some(dev) = dev_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v = stdout_json(&fidelity(&dev, "zero:synflow", &dir.path().join("zero"), "6"));
    assert_eq!(v["config"]["evaluator"], "zero:synflow");
    let rows = v["rows"].as_array().unwrap();
    let pairs: Vec<(f64, f64)> =
        rows.iter().map(|r| (r["details"]["synflow"].as_f64().unwrap(), r["score"].as_f64().unwrap())).collect();
    for (i, &(raw, score)) in pairs.iter().enumerate() {
        assert!(raw > 0.0 && (0.0..1.0).contains(&score), "{raw} -> {score}");
        for &(other_raw, other_score) in &pairs[..i] {
            assert_eq!(raw < other_raw, score < other_score, "the score keeps the raw order");
        }
    }
}

#[test]
fn naswot_scores_keep_their_raw_value_and_order_on_the_proxy_data() {
    let Some(dev) = dev_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("naswot");
    let args = ["fidelity", "--truth", dev.to_str().unwrap(), "--evaluator", "zero:naswot", "--samples", "4"];
    let v = stdout_json(&nas(&[&args[..], &["--data", "default", "--out", out.to_str().unwrap(), "--json"]].concat()));
    assert_eq!(v["config"]["evaluator"], "zero:naswot");
    let rows = v["rows"].as_array().unwrap();
    let pairs: Vec<(f64, f64)> =
        rows.iter().map(|r| (r["details"]["naswot"].as_f64().unwrap(), r["score"].as_f64().unwrap())).collect();
    for (i, &(raw, score)) in pairs.iter().enumerate() {
        assert!(raw > 0.0 && (0.0..1.0).contains(&score), "{raw} -> {score}");
        for &(other_raw, other_score) in &pairs[..i] {
            assert_eq!(raw < other_raw, score < other_score, "the score keeps the raw order");
        }
    }
}

fn space_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/space-nas-bench-macro.json").display().to_string()
}

#[test]
fn the_space_file_holds_6561_codes_judged_at_32_px() {
    let out = nas(&["space", "--config", &space_file()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().next().unwrap().contains("8 decisions, 6,561 architectures, judged at 32x32"), "{text}");
    assert!(text.contains("row2.layer") && text.contains("identity | mb3_k3_relu | mb6_k5_relu"), "{text}");
    let v = stdout_json(&nas(&["space", "--config", &space_file(), "--json"]));
    assert_eq!((&v["size"], &v["resolution"]), (&serde_json::json!(6561), &serde_json::json!(32)));
}

/// A table-evaluator search over the space file: latency at the space's 32 px, every trial's
/// accuracy the dev entry of its code, and codes outside the dev half failed trials.
#[test]
fn a_table_search_over_the_space_file_reads_the_benchmark_at_32_px() {
    let Some(dev) = dev_file() else { return };
    let truth: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&dev).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let table = format!("table:{}", dev.display());
    let args = ["--space", &space_file(), "--evaluator", &table, "--strategy", "random", "--trials", "12"];
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/search.json");
    let out = testkit::process::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_nas"))
            .arg("search")
            .arg("--config")
            .arg(config)
            .args(args)
            .args(["--target-latency", "5ms", "--quiet", "--out"])
            .arg(&run),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed =
        stderr.lines().find_map(|l| l.split(" trials (").nth(1)?.split(" failed").next()?.parse::<usize>().ok());
    // Exit 1 says some trials failed: here, codes the dev half lacks.
    assert_eq!(out.status.code(), Some(if failed > Some(0) { 1 } else { 0 }), "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["proxy"]["latency"]["resolution"], 32);
    let trials = std::fs::read_to_string(run.join("trials.jsonl")).unwrap();
    let mut ok = 0;
    for line in trials.lines() {
        let t: serde_json::Value = serde_json::from_str(line).unwrap();
        let code = t["arch"]["name"].as_str().unwrap().strip_prefix("nas-bench-macro:").unwrap().to_string();
        match truth.get(&code) {
            Some(entry) if t["status"] != "cached" => {
                ok += 1;
                let got = t["evaluation"]["score"].as_f64().unwrap();
                assert!((got - entry["mean_acc"].as_f64().unwrap() / 100.0).abs() < 1e-12, "{code}");
                assert_eq!(t["evaluation"]["macs"], entry["flops"], "{code}");
            }
            Some(_) => {}
            None => {
                assert!(t["status"] == "failed" || t["cached_from"].is_u64(), "{code}: {t}");
            }
        }
    }
    assert_eq!(trials.lines().count(), 12);
    assert!(ok > 0, "{trials}");
    let missing = trials.lines().filter(|l| l.contains("\"status\":\"failed\"")).count();
    assert_eq!(failed, Some(missing), "{stderr}");
}

#[test]
fn sigkilled_mid_run_it_resumes_to_the_rows_of_an_uninterrupted_run() {
    let Some(dev) = dev_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let whole = stdout_json(&fidelity(&dev, "surrogate", &dir.path().join("whole"), "12"));
    let out = dir.path().join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(["fidelity", "--truth", dev.to_str().unwrap(), "--evaluator", "surrogate", "--samples", "12"])
        .args(["--seed", "3", "--out", out.to_str().unwrap(), "--json"])
        .env("MIXNAS_SURROGATE_DELAY_MS", "150")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.join("rows.jsonl");
    let rows = || std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count());
    let start = std::time::Instant::now();
    while rows() < 4 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = rows();
    assert!((4..12).contains(&before), "killed after {before} rows");
    assert!(!out.join("results.json").exists(), "no results before the run ends");
    let resumed = stdout_json(&fidelity(&dev, "surrogate", &out, "12"));
    assert_eq!(resumed["rows"].as_array().unwrap().len(), 12);
    let scores = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["rows"].as_array().unwrap().iter().map(|r| serde_json::json!([r["code"], r["score"], r["truth"]])).collect()
    };
    assert_eq!(scores(&resumed), scores(&whole));
    assert_eq!(resumed["evaluator"], whole["evaluator"]);
}

/// `nas supernet train` then `nas fidelity --evaluator supernet:DIR` on the embedded data: the
/// supernet folder is complete, a second run without --resume is refused in one line, --resume
/// of the finished run trains nothing more, and candidates get scores with their validation loss.
#[test]
fn a_trained_supernet_scores_nas_bench_macro_networks() {
    let Some(dev) = dev_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sn = dir.path().join("sn");
    let space = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json");
    let train = |extra: &[&str]| {
        let args = ["supernet", "train", "--space", space, "--subset", "16", "--val-per-class", "4", "--epochs", "1"];
        nas(&[&args[..], &["--batch", "32", "--quiet", "--out", sn.to_str().unwrap()], extra].concat())
    };
    assert!(train(&[]).status.success());
    for file in ["supernet.safetensors", "supernet.json", "metrics.json"] {
        assert!(sn.join(file).exists(), "{file}");
    }
    let err = stderr_line(&train(&[]));
    assert!(err.contains("a supernet is here already: pass --resume"), "{err}");
    assert!(train(&["--resume"]).status.success());
    let v = stdout_json(&fidelity(&dev, &format!("supernet:{}", sn.display()), &dir.path().join("f"), "4"));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let score = r["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score) && r["details"]["val_loss"].as_f64().unwrap() > 0.0, "{r}");
    }
    let err = stderr_line(&fidelity(&dev, "supernet:/no/such/dir", &dir.path().join("g"), "4"));
    assert!(err.contains("/no/such/dir/supernet.safetensors: no supernet here"), "{err}");
}
