//! Allocator settings for the `nas` binary.
//!
//! Training and inference free and reallocate the same large activation buffers every step.
//! mimalloc by default returns freed memory to the OS after 10 ms, so every step page-faults
//! and zeroes those pages again (8-19% of a training step in the profile). Never returning it
//! (-1) keeps the speed, but the resident set then never falls below the highest it has been,
//! and fragmentation lifts that high-water mark above the live peak. A delay of some seconds
//! keeps both: a buffer reused by the next step is reused before it expires, memory that sits
//! unused longer goes back to the OS. One second is too short: on a loaded machine a step takes
//! seconds, and a 1 s delay purged buffers between steps (1.75x slower epochs); ten seconds ran
//! as fast as never purging (results/bench/train-rss-2026-12-03).
//!
//! mimalloc reads its environment once, at process load, before `main` runs, so setting
//! `MIMALLOC_*` variables in `main` has no effect; options that are consulted on each use can
//! still be set through its API.

use std::ffi::{c_int, c_long};

// Linked in by the `mimalloc` crate (its bundled C library exports the whole mimalloc API;
// `libmimalloc-sys` declares these only under a feature that needs one more crate).
extern crate mimalloc;
extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    #[cfg(test)]
    fn mi_collect(force: bool);
}

/// `mi_option_purge_delay` (milliseconds before freed memory is returned; -1 = never). The crate
/// does not export it as a constant; 15 is its place in `mi_option_e` (the test below checks that
/// it is the option `MIMALLOC_PURGE_DELAY` sets).
const PURGE_DELAY: c_int = 15;

/// How long freed memory stays mapped for reuse before it goes back to the OS: longer than the
/// gap between a buffer's free and its reuse in the next training step, even a slow step, and
/// short enough that memory of a finished phase is returned. (Segments mimalloc frees whole go
/// back after `arena_purge_mult` times this, 10x by default.)
pub const KEEP_FREED_MS: c_long = 10_000;

/// Keeps freed memory mapped for [`KEEP_FREED_MS`] instead of mimalloc's 10 ms, unless the user
/// chose a purge delay through `MIMALLOC_PURGE_DELAY` (-1 there keeps it for good).
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain option setter of the linked allocator; any value is accepted.
        unsafe { mi_option_set(PURGE_DELAY, KEEP_FREED_MS) };
    }
}

/// The purge delay in force, in milliseconds.
#[cfg(test)]
pub fn purge_delay_ms() -> c_long {
    // SAFETY: plain option getter.
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in a child process started with `MIMALLOC_PURGE_DELAY=123`: prints what option
    /// `PURGE_DELAY` reads there, which is 123 only if it is the option that variable sets.
    #[test]
    fn child_reports_purge_delay() {
        if std::env::var_os("MIXNAS_ALLOC_CHILD").is_some() {
            println!("purge_delay={}", purge_delay_ms());
        }
    }

    #[test]
    fn purge_delay_option_is_the_one_the_environment_sets() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "alloc::tests::child_reports_purge_delay", "--nocapture", "--test-threads=1"])
            .env("MIXNAS_ALLOC_CHILD", "1")
            .env("MIMALLOC_PURGE_DELAY", "123")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("purge_delay=123"), "option index is not mimalloc's purge delay: {text}");
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            keep_freed_memory();
            assert_eq!(purge_delay_ms(), KEEP_FREED_MS);
        }
    }

    /// Resident memory of this process in MiB.
    fn rss_mib() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
    }

    /// Run in a child process: touches 256 MiB in 4 MiB buffers (the size class of activation
    /// buffers), frees them, asks mimalloc to purge what it may, and prints how much of it left
    /// the resident set.
    #[test]
    fn child_reports_returned_memory() {
        if std::env::var_os("MIXNAS_ALLOC_CHILD").is_some() {
            keep_freed_memory();
            let buffers: Vec<Vec<u8>> = (0..64).map(|_| std::hint::black_box(vec![1u8; 4 << 20])).collect();
            let before = rss_mib();
            drop(buffers);
            // SAFETY: plain collection call of the linked allocator.
            unsafe { mi_collect(true) };
            println!("returned_mib={:.0}", before - rss_mib());
        }
    }

    fn returned_mib(purge_delay: Option<&str>) -> f64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", "alloc::tests::child_reports_returned_memory", "--nocapture", "--test-threads=1"]);
        child.env("MIXNAS_ALLOC_CHILD", "1").env_remove("MIMALLOC_PURGE_DELAY");
        if let Some(delay) = purge_delay {
            child.env("MIMALLOC_PURGE_DELAY", delay);
        }
        let text = String::from_utf8(child.output().unwrap().stdout).unwrap();
        let value = text.split("returned_mib=").nth(1).and_then(|t| t.split_whitespace().next());
        value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("child printed no figure: {text}"))
    }

    /// The default gives freed memory back to the OS (so a long run's resident set is bounded);
    /// a purge delay of -1, as `MIMALLOC_PURGE_DELAY` can still ask, keeps all of it.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_default_returns_freed_memory_and_never_purging_keeps_it() {
        let (default, never) = (returned_mib(None), returned_mib(Some("-1")));
        assert!(default > 200.0, "default purge delay: only {default} of 256 MiB freed left the resident set");
        assert!(never < 50.0, "purge delay -1: {never} MiB freed left the resident set");
    }
}
