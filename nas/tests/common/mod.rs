//! The `nas` binary as the process tests run it; the rest of what they share is in `testkit`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `nas ARGS` to completion.
pub fn nas(args: &[&str]) -> Output {
    testkit::process::run(Command::new(env!("CARGO_BIN_EXE_nas")).args(args))
}

/// A space of one choice per row (kernels [3] or [3, 5]), written into `dir`: few parts, so a
/// table is quick to build (even under qemu), and every architecture a search draws from it is
/// in the table.
#[allow(dead_code)]
pub fn tiny_space(dir: &Path) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut space: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.join("configs/space-mixnet.json")).unwrap()).unwrap();
    space["options"] = serde_json::json!({"kernels": [[3], [3, 5]], "expand": [3], "expand_groups": [1],
        "project_groups": [1], "se": [null], "act": ["relu"], "layers": [1]});
    for row in space["rows"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("layers");
    }
    let path = dir.join("tiny-space.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&space).unwrap()).unwrap();
    path
}
