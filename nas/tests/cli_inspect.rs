//! `nas inspect` and `nas space` through the built binary.

use std::process::Output;

mod common;
use common::nas;

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn inspect_reports_reference_totals_for_the_presets() {
    for (name, params, macs) in [
        ("mixnet-s", 4_134_606u64, 239_173_360u64),
        ("mixnet-m", 5_014_382, 339_172_672),
        ("mixnet-l", 7_329_252, 555_251_792),
    ] {
        let v = json(&nas(&["inspect", name, "--json"]));
        assert_eq!((v["params"].as_u64(), v["macs"].as_u64()), (Some(params), Some(macs)), "{name}");
    }
    let v = json(&nas(&["inspect", "mixnet-s", "--json"]));
    assert_eq!(v["activations"].as_u64(), Some(6_252_094));
    assert_eq!(v["blocks"].as_array().unwrap().len(), 16);
    let table = nas(&["inspect", "mixnet-s"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("total: 4,134,606 params, 239,173,360 MACs"));
}

#[test]
fn broken_architecture_files_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good: serde_json::Value = serde_json::from_str(&space::presets::mixnet_s().to_json()).unwrap();
    type Break = (&'static str, fn(&mut serde_json::Value), &'static str);
    let breaks: [Break; 4] = [
        ("k4.json", |v| v["blocks"][3]["kernels"] = serde_json::json!([3, 4]), "blocks[3].kernels: kernel size 4"),
        (
            "g7.json",
            |v| v["blocks"][2]["kernels"] = serde_json::json!([3, 5, 7, 9, 11, 13, 15]),
            "blocks[2].kernels: 7 kernel groups",
        ),
        ("se.json", |v| v["blocks"][5]["se"] = serde_json::json!(1.5), "blocks[5].se: 1.5 is out of range"),
        ("chain.json", |v| v["blocks"][7]["in"] = serde_json::json!(96), "blocks[7].in: 96 does not chain"),
    ];
    for (file, edit, want) in breaks {
        let mut v = good.clone();
        edit(&mut v);
        let path = dir.path().join(file);
        std::fs::write(&path, v.to_string()).unwrap();
        let out = nas(&["inspect", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("nas: {}: {want}", path.display())), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn space_sampling_is_seeded_and_describes_the_default() {
    let a = nas(&["space", "--sample", "3", "--seed", "1"]);
    let b = nas(&["space", "--sample", "3", "--seed", "1"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(String::from_utf8_lossy(&a.stdout).lines().count(), 3);
    let v = json(&nas(&["space", "--json"]));
    assert_eq!(v["num_decisions"].as_u64(), Some(72));
    let dir = tempfile::tempdir().unwrap();
    let out = nas(&["space", "--sample", "2", "--seed", "4", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(dir.path().join("sample-001.json")).unwrap();
    space::parse_arch(text.as_bytes(), "sample").unwrap();
}
