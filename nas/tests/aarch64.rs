//! `nas` on aarch64 under qemu-user, and its latency table used by a search on this machine.
//!
//! `MIXNAS_AARCH64_NAS` is the cross-built binary (`cargo build --target
//! aarch64-unknown-linux-gnu -p nas --bin nas`; `.ci/run` builds it and sets the variable).
//! Under qemu the counts and logits must be exact and right; its timings mean nothing, so the
//! table built there is checked for how it is used here, never for its numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use search::results::{read_lines, TrialRecord};
use testkit::process::{arg, ok, run};

mod common;
use common::{nas, tiny_space};

/// The cross-built binary and qemu, or the line saying which is missing.
fn aarch64_nas() -> Option<PathBuf> {
    let how = "cargo build --target aarch64-unknown-linux-gnu -p nas --bin nas, then MIXNAS_AARCH64_NAS=<target dir>/aarch64-unknown-linux-gnu/debug/nas; .ci/run does both";
    let Some(path) = std::env::var_os("MIXNAS_AARCH64_NAS").map(PathBuf::from) else {
        return testkit::require::missing("MIXNAS_AARCH64_NAS (the cross-built aarch64 nas)", how);
    };
    if !path.is_file() {
        return testkit::require::missing(&format!("the aarch64 nas at {}", path.display()), how);
    }
    let qemu = Command::new("qemu-aarch64").arg("--version").output();
    if !qemu.is_ok_and(|o| o.status.success()) {
        return testkit::require::missing("qemu-aarch64", "apt-get install qemu-user");
    }
    Some(path)
}

/// Runs the aarch64 `nas ARGS` under qemu with Debian's aarch64 libraries.
fn arm(nas: &Path, args: &[&str]) -> Output {
    run(Command::new("qemu-aarch64").args(["-L", "/usr/aarch64-linux-gnu"]).arg(nas).args(args))
}

#[test]
fn mixnet_s_counts_are_exact_on_aarch64() {
    let Some(nas) = aarch64_nas() else { return };
    let out = ok(arm(&nas, &["inspect", "mixnet-s", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!((v["params"].as_u64(), v["macs"].as_u64()), (Some(4_134_606), Some(239_173_360)));
}

/// timm's MixNet-S imported and run on aarch64 reproduces timm's logits (the x86 bound).
#[test]
fn imported_timm_mixnet_s_reproduces_its_logits_on_aarch64() {
    let Some(nas) = aarch64_nas() else { return };
    let Some(fixtures) = testkit::shared::timm_fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, logits) = (dir.path().join("ckpt"), dir.path().join("logits.safetensors"));
    let weights = fixtures.join("mixnet_s.weights.safetensors");
    ok(arm(&nas, &["import-timm", "--model", "mixnet_s", "--weights", arg(&weights), "--out", arg(&ckpt)]));
    let io = fixtures.join("mixnet_s.io.safetensors");
    ok(arm(&nas, &["infer", "--checkpoint", arg(&ckpt), "--tensor", arg(&io), "--output", arg(&logits)]));
    let ours = candle_core::safetensors::load(&logits, &Device::Cpu).unwrap().remove("logits").unwrap();
    let timm = candle_core::safetensors::load(&io, &Device::Cpu).unwrap().remove("logits").unwrap();
    let d = testkit::float::max_abs_diff(&ours, &timm);
    eprintln!("mixnet_s on aarch64: max abs diff {d:e}");
    assert!(d < 1e-3, "max abs diff {d}");
}

/// A table built under qemu drives an x86 surrogate search: every trial's latency is the one
/// `nas latency --predict --table` gives for its architecture; a copy of the table claiming
/// another mixnas/kernel version is refused in one line.
#[test]
fn a_table_built_on_aarch64_is_what_a_search_here_uses() {
    let Some(arm_nas) = aarch64_nas() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (space, table) = (tiny_space(dir.path()), dir.path().join("arm.json"));
    let build = ["latency", "--build-table", "--space", arg(&space), "--resolution", "32", "--repeats", "3"];
    ok(arm(&arm_nas, &[&build[..], &["--table", arg(&table)]].concat()));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
    assert_eq!(saved["machine"]["arch"], "aarch64", "{}", saved["machine"]);

    let run_dir = dir.path().join("run");
    let search = ["search", "--evaluator", "surrogate", "--trials", "8", "--quiet", "--space", arg(&space)];
    let out = ok(nas(&[&search[..], &["--latency-table", arg(&table), "--out", arg(&run_dir)]].concat()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("latency: table {} (cpu ", table.display())), "{stderr}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["proxy"]["latency"]["table"], arg(&table), "the run records its table");
    let records: Vec<TrialRecord> = read_lines(&run_dir.join("trials.jsonl")).unwrap();
    assert_eq!(records.len(), 8);
    for r in &records {
        let e = r.evaluation.as_ref().expect("every trial is evaluated");
        let arch = dir.path().join(format!("trial-{}.json", r.id));
        std::fs::write(&arch, r.arch.as_ref().expect("the journal keeps the arch").to_json()).unwrap();
        let predict = ["latency", "--predict", "--arch", arg(&arch), "--resolution", "32", "--json", "--table"];
        let p: serde_json::Value =
            serde_json::from_slice(&ok(nas(&[&predict[..], &[arg(&table)]].concat())).stdout).unwrap();
        assert_eq!(p["predicted"]["device"]["arch"], "aarch64");
        assert_eq!((e.latency_ms, e.latency_source.as_str()), (p["predicted"]["ms"].as_f64().unwrap(), "predicted"));
    }

    let mut old = saved.clone();
    old["machine"]["mixnas"] = "0.0.1+k00000000".into();
    let old_table = dir.path().join("old.json");
    std::fs::write(&old_table, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let out =
        nas(&[&search[..], &["--latency-table", arg(&old_table), "--out", arg(&dir.path().join("old-run"))]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.trim().lines().count() == 1, "{stderr}");
    assert!(stderr.contains("old.json") && stderr.contains("machine.mixnas is \"0.0.1+k00000000\""), "{stderr}");
    assert!(!dir.path().join("old-run").exists(), "nothing written for a refused table");
}
