//! Fingerprints the sources that decide how fast a network runs and how it is timed (the ops,
//! the model and the latency measurement), so a latency table measured with other kernels is
//! never mistaken for one of this build's.

use std::path::{Path, PathBuf};

fn main() {
    let mut files = Vec::new();
    for dir in ["../kernels/src", "src/model", "src/latency"] {
        println!("cargo:rerun-if-changed={dir}");
        collect(Path::new(dir), &mut files);
    }
    files.sort();
    // FNV-1a over each path and its bytes: stable across builds and toolchains.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        for &b in f.to_string_lossy().as_bytes().iter().chain(&bytes) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=MIXNAS_KERNELS_FINGERPRINT={:08x}", h >> 32);
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
