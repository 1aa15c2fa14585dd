//! Allocator settings for the `nas` binary.
//!
//! Training and inference free and reallocate the same large activation buffers every step.
//! mimalloc by default returns freed memory to the OS after 10 ms, so every step page-faults
//! and zeroes those pages again (8-19% of a training step in the profile). mimalloc reads its
//! environment once, at process load, before `main` runs, so setting `MIMALLOC_*` variables in
//! `main` has no effect; options that are consulted on each use can still be set through its API.

use std::ffi::{c_int, c_long};

// Linked in by the `mimalloc` crate (its bundled C library exports the whole mimalloc API;
// `libmimalloc-sys` declares these only under a feature that needs one more crate).
extern crate mimalloc;
extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// `mi_option_purge_delay` (milliseconds before freed memory is returned; -1 = never). The crate
/// does not export it as a constant; 15 is its place in `mi_option_e` (the test below checks that
/// it is the option `MIMALLOC_PURGE_DELAY` sets).
const PURGE_DELAY: c_int = 15;

/// Keeps freed memory mapped for reuse instead of handing it back to the OS, unless the user
/// chose a purge delay through `MIMALLOC_PURGE_DELAY`.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain option setter of the linked allocator; any value is accepted.
        unsafe { mi_option_set(PURGE_DELAY, -1) };
    }
}

/// The purge delay in force, in milliseconds.
#[cfg(test)]
#[allow(clippy::useless_conversion)] // c_long is i64 here, i32 on some targets
pub fn purge_delay_ms() -> i64 {
    // SAFETY: plain option getter.
    i64::from(unsafe { mi_option_get(PURGE_DELAY) })
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
            assert_eq!(purge_delay_ms(), -1);
        }
    }
}
