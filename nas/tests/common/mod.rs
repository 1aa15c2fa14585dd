//! The `nas` binary as the process tests run it; the rest of what they share is in `testkit`.

use std::process::{Command, Output};

/// Runs `nas ARGS` to completion.
pub fn nas(args: &[&str]) -> Output {
    testkit::process::run(Command::new(env!("CARGO_BIN_EXE_nas")).args(args))
}
