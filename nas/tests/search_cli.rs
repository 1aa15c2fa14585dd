//! `nas search` as a process: the real proxy evaluator runs a tiny search to completion;
//! SIGKILL at several moments and `--resume` reach the journal of an uninterrupted run; bad
//! input is one error line, exit 2 and no run folder; an unreachable latency target is warned
//! about from the lookup table; successive halving promotes by rung, from flags or the config,
//! and resumes like the rest.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use search::results::{read_lines, Status, Summary, TrialRecord};
use testkit::process::{arg, ok, run};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `nas search` over the shipped defaults, surrogate evaluator, two workers, with its progress.
fn search_with_progress(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nas"));
    cmd.arg("search").arg("--config").arg(workspace().join("configs/search.json"));
    cmd.args(["--evaluator", "surrogate", "--workers", "2", "--threads", "2"]);
    cmd.args(args);
    cmd
}

/// [`search_with_progress`] with `--quiet`.
fn search(args: &[&str]) -> Command {
    search_with_progress(&[&["--quiet"], args].concat())
}

/// The journal by id without timestamps; panics unless every id appears exactly once.
fn journal(dir: &Path) -> Vec<TrialRecord> {
    let mut records: Vec<TrialRecord> = read_lines(&dir.join("trials.jsonl")).unwrap();
    records.sort_by_key(|r| r.id);
    let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "a trial journalled twice in {}", dir.display());
    for r in &mut records {
        (r.started_at, r.finished_at) = (0.0, 0.0);
    }
    records
}

fn lines_in(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("trials.jsonl")).map_or(0, |t| t.lines().count())
}

/// The shipped defaults cut to seconds a trial: one proxy epoch on 12 images per class at 16 px,
/// latency predicted at 32 px from a table file in `dir` (missing parts measured into it).
fn tiny_proxy_config(dir: &Path) -> PathBuf {
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace().join("configs/search.json")).unwrap()).unwrap();
    c["proxy"] = serde_json::json!({
        "epochs": 1, "batch": 16, "max_lr": 0.025, "train_per_class": 12, "val_per_class": 4, "resolution": 16,
        "latency": {"method": "predict", "threads": 1, "resolution": 32, "table": dir.join("table.json")},
    });
    let path = dir.join("tiny-proxy.json");
    std::fs::write(&path, c.to_string()).unwrap();
    path
}

#[test]
fn a_real_proxy_search_runs_to_completion_and_inspects() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, dir) = (tiny_proxy_config(tmp.path()), tmp.path().join("run"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nas"));
    cmd.args(["search", "--config", arg(&config), "--evaluator", "proxy", "--data", "default", "--trials", "2"]);
    cmd.args(["--seed", "5", "--threads", "2", "--target-latency", "5ms", "--out", arg(&dir)]);
    let start = Instant::now();
    let out = ok(run(&mut cmd));
    eprintln!("2 proxy trials: {:?}", start.elapsed());
    // Stderr is a pipe: one line per finished trial, none from the proxy training inside it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let trial_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("trial ")).collect();
    assert_eq!(trial_lines.len(), 2, "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("epoch ")), "{stderr}");

    let records = journal(&dir);
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let e = r.evaluation.as_ref().unwrap();
        assert!((0.0..=1.0).contains(&e.score) && e.latency_ms > 0.0 && e.train_seconds > 0.0, "{e:?}");
        assert!(e.details["train_loss"].as_f64().is_some_and(f64::is_finite), "{e:?}");
        assert!(!e.details.contains_key("epochs"), "full fidelity keeps the evaluator's epochs unrecorded: {e:?}");
        assert!(e.macs > 0 && e.params > 0, "{e:?}");
    }
    let summary: Summary = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary.trials, summary.failed, summary.invalid), (2, 0, 0));
    let best_id = summary.best_trial.unwrap();
    let best = space::parse_arch(&std::fs::read(dir.join("best.json")).unwrap(), "best.json").unwrap();
    let trial = records.iter().find(|r| r.id == best_id).unwrap();
    assert_eq!(best.provenance.as_ref().and_then(|p| p.reward), Some(trial.reward));
    assert!(records.iter().all(|r| r.reward <= trial.reward), "best.json is the best trial");
    // Proxy training's number is a validation accuracy, and named so.
    assert_eq!(summary.metric, Some(search::setup::ValueKind::Accuracy));
    assert_eq!(best.provenance.as_ref().and_then(|p| p.metric.as_deref()), Some("accuracy"));

    let out = ok(run(Command::new(env!("CARGO_BIN_EXE_nas")).args(["inspect", arg(&dir), "--json"])));
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["best"][0]["trial"].as_u64(), Some(best_id), "{inspected}");
    // The stopwatch check: the best network timed at the end, beside its prediction.
    let watch = best.provenance.as_ref().and_then(|p| p.stopwatch.clone()).expect("best.json has a stopwatch check");
    let (nominal, now, factor) =
        (watch.predicted_nominal_ms.unwrap(), watch.predicted_now_ms.unwrap(), watch.speed_factor.unwrap());
    assert!(watch.measured_median_ms >= watch.measured_min_ms && watch.measured_min_ms > 0.0, "{watch:?}");
    assert!(nominal > 0.0 && (now - nominal * factor).abs() <= 1e-9 * now, "{watch:?}");
    assert_eq!((watch.resolution, watch.threads), (32, 1));
    assert_eq!(inspected["stopwatch"]["measured_median_ms"].as_f64(), Some(watch.measured_median_ms), "{inspected}");
    assert!(stderr.contains("stopwatch: best network measured ") && stderr.contains("speed factor now"), "{stderr}");
    let text = ok(run(Command::new(env!("CARGO_BIN_EXE_nas")).arg("inspect").arg(dir.join("best.json"))));
    assert!(String::from_utf8_lossy(&text.stdout).contains("stopwatch at the end of its search: measured "));
    assert_eq!(inspected["best"][0]["reward"].as_f64(), Some(trial.reward));
    let out = ok(run(Command::new(env!("CARGO_BIN_EXE_nas")).args(["inspect", arg(&dir)])));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("2 of 2 trials (2 evaluated, 0 cached, 0 failed, 0 invalid)") && table.contains("finished"),
        "{table}"
    );
}

/// Kills `child` with SIGKILL once `ready` holds (or the process ends by itself).
fn kill_when(mut child: Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() && child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "the search made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn sigkill_and_resume_reach_the_uninterrupted_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, broken) = (tmp.path().join("whole"), tmp.path().join("broken"));
    let common = ["--trials", "24", "--seed", "7", "--target-latency", "35ms"];
    let out = run(search(&common).arg("--out").arg(&whole));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = journal(&whole);
    assert_eq!(expected.len(), 24);
    let lines = std::fs::read_to_string(whole.join("trials.jsonl")).unwrap();
    assert!(!lines.contains("\"rung\"") && !lines.contains("promoted_from"), "full fidelity: no rung fields");

    // Slowed trials so that kills land mid-run: right after start, then after 5 and 14 trials.
    let delayed = |cmd: &mut Command| cmd.env("MIXNAS_SURROGATE_DELAY_MS", "40").stderr(Stdio::null()).spawn().unwrap();
    let first = delayed(search(&common).arg("--out").arg(&broken));
    kill_when(first, || broken.join("config.json").exists());
    for after in [5, 14] {
        let resumed = delayed(search(&["--resume"]).arg(&broken));
        kill_when(resumed, || lines_in(&broken) >= after);
        let so_far = journal(&broken);
        assert!(so_far.len() >= after && so_far.len() < 24, "killed after {} trials", so_far.len());
        for r in &so_far {
            assert_eq!(Some(r), expected.iter().find(|e| e.id == r.id), "trial {} differs", r.id);
        }
    }
    let out = run(search(&["--resume"]).arg(&broken));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(journal(&broken), expected);
    assert!(broken.join("best.json").exists());
}

/// Exit code and stderr lines of a run expected to fail before creating anything.
fn refused(mut cmd: Command, out_dir: &Path) -> (i32, Vec<String>) {
    let out = run(cmd.arg("--out").arg(out_dir));
    assert!(!out_dir.exists(), "{} was left behind", out_dir.display());
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), stderr.lines().map(String::from).collect())
}

#[test]
fn bad_input_is_one_line_exit_2_and_no_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");

    let (code, lines) = refused(search(&["--target-latency", "fast"]), &out_dir);
    assert_eq!((code, lines.len()), (2, 1), "{lines:?}");
    assert!(lines[0].contains("--target-latency") && lines[0].contains("fast"), "{lines:?}");

    let missing = tmp.path().join("no-such-data");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_nas"));
    proxy.args(["search", "--target-latency", "75ms", "--evaluator", "proxy", "--quiet", "--data"]).arg(&missing);
    let (code, lines) = refused(proxy, &out_dir);
    assert_eq!((code, lines.len()), (2, 1), "{lines:?}");
    assert!(lines[0].contains("no-such-data"), "{lines:?}");

    // A results folder under a plain file cannot be created, even by root.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let (code, lines) = refused(search(&[]), &file.join("run"));
    assert_eq!((code, lines.len()), (2, 1), "{lines:?}");
    assert!(lines[0].contains("a-file"), "{lines:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

#[test]
fn an_unreachable_target_is_warned_about_from_the_lookup_table() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(["search", "--target-latency", "1ms", "--trials", "0", "--evaluator", "proxy"])
        .arg("--config")
        .arg(workspace().join("configs/search.json"))
        .arg("--out")
        .arg(tmp.path().join("run")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = stderr.lines().find(|l| l.contains("warning")).unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.contains("1ms is unreachable") && warning.contains("lookup-table"), "{warning}");
    // No trial ran: the closing lines must not point at a best.json that does not exist.
    assert!(!tmp.path().join("run/best.json").exists());
    assert!(stderr.contains("no best.json") && !stderr.contains("nas inspect"), "{stderr}");
}

/// The tests' stderr is a pipe, not a terminal: one line per finished trial replaces the bar.
#[test]
fn without_a_terminal_each_finished_trial_is_one_stderr_line() {
    let tmp = tempfile::tempdir().unwrap();
    let common = ["--trials", "3", "--seed", "3", "--target-latency", "35ms", "--out"];
    let out = run(search_with_progress(&common).arg(tmp.path().join("loud")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("trial ")).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for (done, line) in lines.iter().enumerate() {
        assert!(line.contains(&format!(" ({}/3): ", done + 1)), "{line}");
        assert!(line.contains("reward ") && line.ends_with("s)"), "{line}");
    }
    let mut ids: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2"]);
    let quiet = run(search(&common).arg(tmp.path().join("quiet")));
    assert!(quiet.status.success());
    let quiet_stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!quiet_stderr.lines().any(|l| l.starts_with("trial ")), "--quiet prints no trial lines: {quiet_stderr}");
    assert_eq!(out.stdout, quiet.stdout, "the progress goes to stderr only");
}

/// The default evaluator, NASWOT, records its reference scale in the run config; a resumed run
/// keeps it, and every trial's score is the logistic of its standardised raw score, named a
/// score wherever the run shows it.
#[test]
fn a_naswot_search_records_its_scale_and_resumes_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let space = workspace().join("configs/space-nas-bench-macro.json");
    let search = |flag: &str, trials: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nas"));
        cmd.arg("search").arg("--config").arg(workspace().join("configs/search.json")).arg("--space").arg(&space);
        cmd.args(["--data", "default", "--trials", trials, "--seed", "2", "--threads", "2", "--quiet", flag]);
        String::from_utf8(ok(run(cmd.arg(&dir))).stderr).unwrap()
    };
    let first = search("--out", "2");
    assert!(first.contains("score = logistic((v - "), "{first}");
    assert!(first.contains(" score ") && !first.contains("accuracy"), "{first}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["evaluator"], "zero:naswot");
    let scale = &config["proxy"]["zero_scale"];
    assert_eq!(scale["networks"], 16, "{config}");
    let (mean, sd) = (scale["mean"].as_f64().unwrap(), scale["sd"].as_f64().unwrap());
    let resumed = search("--resume", "4");
    assert!(resumed.contains(&format!("logistic((v - {mean:.4}) / {sd:.4})")), "{resumed}");
    let j = journal(&dir);
    assert_eq!(j.len(), 4);
    for r in &j {
        let e = r.evaluation.as_ref().unwrap();
        let z = (e.details["naswot"].as_f64().unwrap() - mean) / sd;
        assert!((e.score - 1.0 / (1.0 + (-z).exp())).abs() < 1e-12, "{r:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["metric"], "score");
    assert!(summary["best_score"].is_f64() && summary.get("best_accuracy").is_none(), "{summary}");
}

/// The dev half of NAS-Bench-Macro's truth, where the shared folder has it.
fn benchmark_dev() -> Option<PathBuf> {
    testkit::shared::shared_path("benchmarks/nas-bench-macro/cifar10-dev.json")
}

/// A random search over NAS-Bench-Macro's space scored from its truth, in seconds.
fn benchmark_search(dev: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let table = format!("table:{}", dev.display());
    let space = workspace().join("configs/space-nas-bench-macro.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nas"));
    cmd.arg("search").arg("--space").arg(space).args(["--evaluator", &table, "--strategy", "random"]);
    cmd.args(["--seed", "1", "--target-latency", "5ms", "--quiet"]).args(args).arg("--out").arg(out);
    run(&mut cmd)
}

#[test]
fn successive_halving_promotes_9_to_3_to_1_and_best_json_is_the_top_rung() {
    let Some(dev) = benchmark_dev() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let flags = tmp.path().join("flags");
    let config = workspace().join("configs/search.json");
    let out = benchmark_search(&dev, &flags, &["--config", arg(&config), "--trials", "9", "--fidelity", "sh"]);
    // Exit 1: codes outside the dev half are failed trials.
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let j = journal(&flags);
    let ids_at = |rung: usize| j.iter().filter(|r| r.rung == rung).map(|r| r.id).collect::<Vec<u64>>();
    assert_eq!((ids_at(0), ids_at(1), ids_at(2)), ((0..9).collect(), vec![9, 10, 11], vec![12]));
    let mut scored: Vec<&TrialRecord> = j[..9].iter().filter(|r| r.status == Status::Ok).collect();
    scored.sort_by(|a, b| b.reward.total_cmp(&a.reward));
    let mut best_three: Vec<u64> = scored[..3].iter().map(|r| r.id).collect();
    best_three.sort();
    assert_eq!(j[9..12].iter().map(|r| r.promoted_from.unwrap()).collect::<Vec<_>>(), best_three);
    let top = &j[12];
    let from = &j[top.promoted_from.unwrap() as usize];
    assert_eq!((from.rung, &from.choices, from.seed), (1, &top.choices, top.seed));
    assert_eq!(from.promoted_from, Some(scored[0].id), "rung 1's best goes on");
    // The table scores every rung alike: the top rung holds the best of the bracket.
    assert_eq!(top.reward, scored[0].reward);
    let summary: Summary = serde_json::from_slice(&std::fs::read(flags.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary.trials, summary.best_trial), (13, Some(12)), "best by rung, then reward");
    let best = space::parse_arch(&std::fs::read(flags.join("best.json")).unwrap(), "best.json").unwrap();
    assert_eq!(best.provenance.and_then(|p| p.trial), Some(12));

    // The same as a config block.
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    c["fidelity"] = serde_json::json!({"kind": "sh", "eta": 3, "rungs": 3});
    let block = tmp.path().join("sh.json");
    std::fs::write(&block, c.to_string()).unwrap();
    let from_config = tmp.path().join("config");
    let out = benchmark_search(&dev, &from_config, &["--config", arg(&block), "--trials", "9"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // The same trials and scores; predicted latencies may differ in the last digits, since the
    // shared table's nominal speed learns from the speed check at each search's start.
    let trials = |j: &[TrialRecord]| -> Vec<_> {
        let score = |r: &TrialRecord| r.evaluation.as_ref().map(|e| e.score);
        j.iter().map(|r| (r.id, r.choices.clone(), r.seed, r.rung, r.promoted_from, r.status, score(r))).collect()
    };
    assert_eq!(trials(&journal(&from_config)), trials(&j));
}

#[test]
fn successive_halving_sigkilled_and_resumed_reaches_the_uninterrupted_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, broken) = (tmp.path().join("whole"), tmp.path().join("broken"));
    let common = ["--trials", "18", "--seed", "4", "--target-latency", "35ms", "--fidelity", "sh"];
    let out = run(search(&common).arg("--out").arg(&whole));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = journal(&whole);
    let rungs: Vec<usize> = expected.iter().map(|r| r.rung).collect();
    let bracket = [vec![0; 9], vec![1; 3], vec![2]].concat();
    assert_eq!(rungs, [bracket.clone(), bracket].concat());

    // Killed at rung 0 of the first bracket, at its rung 1, then in the second bracket.
    let delayed = |cmd: &mut Command| cmd.env("MIXNAS_SURROGATE_DELAY_MS", "40").stderr(Stdio::null()).spawn().unwrap();
    let first = delayed(search(&common).arg("--out").arg(&broken));
    kill_when(first, || lines_in(&broken) >= 4);
    for after in [10, 17] {
        let resumed = delayed(search(&["--resume"]).arg(&broken));
        kill_when(resumed, || lines_in(&broken) >= after);
        let so_far = journal(&broken);
        assert!(so_far.len() >= after && so_far.len() < 26, "killed after {} trials", so_far.len());
        for r in &so_far {
            assert_eq!(Some(r), expected.iter().find(|e| e.id == r.id), "trial {} differs", r.id);
        }
    }
    let out = run(search(&["--resume"]).arg(&broken));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(journal(&broken), expected);
}

#[test]
fn halving_settings_that_cannot_run_are_one_line_exit_2_and_no_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let cases: [(&[&str], &str); 4] = [
        (&["--fidelity", "sh", "--eta", "1"], "eta 1 (--eta, fidelity.eta): must be at least 2"),
        (&["--rungs", "2"], "add --fidelity sh"),
        (&["--fidelity", "sh", "--trials", "5"], "fewer than 9 candidates"),
        // The shipped config's proxy trains 2 epochs: not a multiple of 3 * 3.
        (&["--fidelity", "sh", "--evaluator", "proxy"], "proxy.epochs 2 with --fidelity sh --eta 3 --rungs 3"),
    ];
    for (args, says) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nas"));
        cmd.arg("search").arg("--config").arg(workspace().join("configs/search.json"));
        cmd.args(["--quiet", "--target-latency", "35ms"]).args(args);
        let (code, lines) = refused(cmd, &out_dir);
        assert_eq!((code, lines.len()), (2, 1), "{args:?}: {lines:?}");
        assert!(lines[0].contains(says), "{args:?}: {lines:?}");
    }
}
