//! `nas report` and `nas inspect RUN_DIR` through the built binary, on a real surrogate search
//! and a real (tiny) training run made here; the page is also opened in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use search::results::{read_lines, Status, Summary, TrialRecord};

mod common;
use common::nas;
use testkit::process::{arg, ok};

/// One finished surrogate search shared by the tests of this file, under target/tmp.
fn search_run() -> PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_report_run");
        if run.exists() {
            std::fs::remove_dir_all(&run).unwrap();
        }
        let args = ["search", "--target-latency", "75ms", "--evaluator", "surrogate", "--trials", "24", "--seed", "3"];
        ok(nas(&[&args[..], &["--quiet", "--out", arg(&run)]].concat()));
        run
    })
    .clone()
}

fn records(run: &Path) -> Vec<TrialRecord> {
    read_lines(&run.join("trials.jsonl")).unwrap()
}

fn summary(run: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

/// Trial ids by reward, highest first (earliest id on ties), as the report ranks them.
fn ranked(records: &[TrialRecord]) -> Vec<&TrialRecord> {
    let mut done: Vec<&TrialRecord> = records.iter().filter(|r| r.status == Status::Ok).collect();
    done.sort_by(|a, b| b.reward.total_cmp(&a.reward).then(a.id.cmp(&b.id)));
    done
}

#[test]
fn report_of_a_search_run_has_every_plot_and_the_runs_numbers() {
    let run = &search_run();
    let out = tempfile::tempdir().unwrap();
    let (html_path, plots) = (out.path().join("r.html"), out.path().join("plots"));
    ok(nas(&["report", arg(run), "--out", arg(&html_path), "--plots", arg(&plots)]));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("href="),
        "self-contained, no script"
    );
    assert_eq!(html.matches("<svg").count(), 4, "surrogate-latency, over trials, choices, best architecture");
    for id in ["front", "history", "choices", "best", "top"] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "section {id}");
    }
    let sum = summary(run);
    let best = sum.best_trial.unwrap();
    assert!(html.contains(&format!("{:.4}", sum.best_reward.unwrap())));
    assert!(html.contains(&format!("best reward (trial {best})")), "best trial marked on the scatter");
    assert!(html.contains("target 75 ms"), "target line in the legend");
    assert!(html.contains("Surrogate vs latency") && html.contains("best surrogate"), "the surrogate's number named");
    assert!(!html.contains("accuracy"), "a surrogate's number is no accuracy");
    let front: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("pareto.json")).unwrap()).unwrap();
    assert!(html.contains(&format!("Pareto front ({})", front.len())));
    let recs = records(run);
    assert!(html.contains(&format!("trials ({})", recs.iter().filter(|r| r.status == Status::Ok).count())));
    for (rank, r) in ranked(&recs).iter().take(3).enumerate() {
        let row = format!("<tr><td>{}</td><td>{}</td><td>{:.4}</td>", rank + 1, r.id, r.reward);
        assert!(html.contains(&row), "top table row {row}");
    }
    assert!(html.contains("row1") && html.contains("kernels"), "decisions named from the space");
    let mut files: Vec<String> =
        std::fs::read_dir(&plots).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["best-arch.svg", "choices.svg", "surrogate-latency.svg", "trials.svg"]);
    for f in files {
        let svg = std::fs::read_to_string(plots.join(&f)).unwrap();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{f}");
    }
}

#[test]
fn inspect_summarises_a_run_folder() {
    let run = &search_run();
    let v: serde_json::Value =
        serde_json::from_slice(&ok(nas(&["inspect", arg(run), "--json", "--top", "3"])).stdout).unwrap();
    let recs = records(run);
    assert_eq!(v["budget"]["trials_done"].as_u64(), Some(recs.len() as u64));
    assert_eq!(v["budget"]["trials_planned"].as_u64(), Some(24));
    assert_eq!(v["budget"]["finished"].as_bool(), Some(true));
    assert_eq!(v["budget"]["wall_seconds"].as_f64(), Some(summary(run).wall_seconds));
    let best: Vec<u64> = v["best"].as_array().unwrap().iter().map(|t| t["trial"].as_u64().unwrap()).collect();
    let want: Vec<u64> = ranked(&recs).iter().take(3).map(|r| r.id).collect();
    assert_eq!(best, want);
    assert_eq!(best[0], summary(run).best_trial.unwrap());
    let front: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("pareto.json")).unwrap()).unwrap();
    let ids = |a: &[serde_json::Value], key: &str| a.iter().map(|t| t[key].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(v["pareto"].as_array().unwrap(), "trial"), ids(&front, "id"));
    let text = String::from_utf8(ok(nas(&["inspect", arg(run)])).stdout).unwrap();
    assert!(text.contains(&format!("budget: {} of 24 trials", recs.len())), "{text}");
    assert!(
        text.contains("best 5 trials by reward")
            && text.contains(&format!("Pareto front (surrogate vs latency), {} trials", front.len()))
    );
    assert_eq!(v["metric"], "surrogate");
    let first = &v["best"][0];
    assert_eq!(first["score"], serde_json::json!(summary(run).best_score.unwrap()), "{first}");
    assert_eq!(summary(run).metric, Some(search::setup::ValueKind::Surrogate));
    let best: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["provenance"]["metric"], "surrogate");
    assert_eq!(best["provenance"]["score"], first["score"]);
}

/// A NASWOT run folder committed before scores were named (`val_accuracy` in its journal,
/// `best_accuracy` in its summary) reads, its numbers called scores.
#[test]
fn an_old_naswot_run_folder_reads_with_its_numbers_called_scores() {
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/search/default-75ms");
    let journal = std::fs::read_to_string(run.join("trials.jsonl")).unwrap();
    assert!(journal.contains("\"val_accuracy\"") && !journal.contains("\"score\""), "an old-format journal");
    let v: serde_json::Value =
        serde_json::from_slice(&ok(nas(&["inspect", arg(&run), "--json", "--top", "1"])).stdout).unwrap();
    assert_eq!(v["metric"], "score");
    let old: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!((&v["best"][0]["trial"], &v["best"][0]["score"]), (&old["best_trial"], &old["best_accuracy"]));
    let text = String::from_utf8(ok(nas(&["inspect", arg(&run)])).stdout).unwrap();
    assert!(text.contains("Pareto front (score vs latency)") && !text.contains("accuracy"), "{text}");
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("r.html");
    ok(nas(&["report", arg(&run), "--out", arg(&html)]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Score vs latency") && page.contains("best score"), "the report names scores");
}

/// A two-block network named "tiny", so that training it takes seconds.
fn tiny_arch(dir: &Path) -> PathBuf {
    let arch = space::Arch { name: Some("tiny".into()), ..testkit::arch::mixnet_s_prefix(2) };
    testkit::arch::write_json(&arch, dir.join("tiny.json"))
}

#[test]
fn report_of_a_training_run_shows_its_curves_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let (arch, train) = (tiny_arch(dir.path()), dir.path().join("train"));
    let args = ["train", "--data", "default", "--epochs", "2", "--subset", "12", "--batch", "16", "--threads", "1"];
    ok(nas(&[&args[..], &["--arch", arg(&arch), "--out", arg(&train)]].concat()));
    ok(nas(&["report", arg(&train), "--plots", arg(&dir.path().join("plots"))]));
    let html = std::fs::read_to_string(train.join("report.html")).unwrap();
    assert!(html.contains("Training report: train") && html.contains("tiny"));
    assert_eq!(html.matches("<svg").count(), 3, "curves, learning rate, architecture");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(train.join("metrics.json")).unwrap()).unwrap();
    for e in metrics["epochs"].as_array().unwrap() {
        let (loss, lr) = (e["train_loss"].as_f64().unwrap(), e["lr"].as_f64().unwrap());
        let row = format!("<tr><td>{}</td><td>{loss:.4}</td>", e["epoch"]);
        assert!(html.contains(&row) && html.contains(&format!("<td>{lr:.5}</td>")), "epoch row {row}");
    }
    assert!(html.contains(&format!("{:.4}", metrics["test_accuracy"].as_f64().unwrap())));
    assert!(html.contains("validation accuracy") && html.contains("schedule"), "curve legends");
    assert_eq!(std::fs::read_dir(dir.path().join("plots")).unwrap().count(), 3);
}

#[test]
fn a_folder_that_is_neither_kind_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    for args in [vec!["report", arg(dir.path())], vec!["inspect", arg(dir.path())]] {
        let out = nas(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let want =
            format!("nas: {}: not a search run (config.json and trials.jsonl), a training run", dir.path().display());
        assert!(stderr.starts_with(&want), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    assert!(!dir.path().join("report.html").exists(), "nothing written");
    let missing = dir.path().join("nope");
    let out = nas(&["report", arg(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Screenshots `html` in headless Chromium; returns Chromium's log (console messages included).
fn screenshot(html: &Path, png: &Path, profile: &Path) -> String {
    let mut child = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,3000"])
        .args(["--enable-logging=stderr", "--log-level=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // A hung browser would hang the suite: give it a generous deadline, then kill it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("chromium did not finish within 180 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn report_opens_in_headless_chromium_without_errors() {
    if !Path::new(CHROMIUM).exists() {
        testkit::require::missing::<()>(CHROMIUM, "apt-get install -y chromium; .ci/run does");
        return;
    }
    let run = &search_run();
    let dir = tempfile::tempdir().unwrap();
    let (html, png) = (dir.path().join("report.html"), dir.path().join("shot.png"));
    ok(nas(&["report", arg(run), "--out", arg(&html)]));
    let log = screenshot(&html, &png, &dir.path().join("profile"));
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let img = image::open(&png).expect("a PNG screenshot").to_rgb8();
    assert_eq!(img.dimensions(), (1400, 3000));
    let near = |p: &image::Rgb<u8>, c: [u8; 3]| p.0.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 12);
    let page = [0xf4, 0xf5, 0xf7];
    let inked = img.pixels().filter(|p| !near(p, page) && !near(p, [255, 255, 255])).count();
    assert!(inked > 100_000, "the screenshot is nearly blank ({inked} inked pixels)");
    // Only the plots draw the Pareto front's orange.
    let front = img.pixels().filter(|p| near(p, [0xf5, 0x85, 0x18])).count();
    assert!(front > 500, "Pareto front not visible ({front} pixels)");
}
