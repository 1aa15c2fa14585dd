//! Running a built binary from an integration test (`env!("CARGO_BIN_EXE_<name>")`).

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{:?} does not run: {e}", cmd.get_program()))
}

/// `out`, after asserting it succeeded (its stderr is the failure message).
pub fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `path` as a command-line argument.
///
/// # Panics
/// If the path is not UTF-8.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}
