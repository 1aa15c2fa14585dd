//! Helpers the `nas` process tests share. Each test binary uses a different subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `nas ARGS` to completion.
pub fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas")).args(args).output().expect("nas runs")
}

/// `out`, after asserting it succeeded (its stderr is the failure message).
pub fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
