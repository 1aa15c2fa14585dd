//! What a test needs from outside the workspace (shared data, a tool) and may not find. Under
//! `CI=true`, which CI services set, a missing need fails the test with one line saying what is
//! missing and how to get it, so CI cannot pass without running the check; elsewhere the test
//! skips with that line on stderr (`SKIPPED: ...`).

/// Whether this is a CI run: `CI` is `true`.
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `what` is missing and `how_to_get` says how to get it: panics under CI, else prints a SKIPPED
/// line and returns `None` (so `let Some(x) = ... else { return }` skips).
pub fn missing<T>(what: &str, how_to_get: &str) -> Option<T> {
    report(under_ci(), &format!("{what} is missing ({how_to_get})"))
}

/// The value, or, where the lookup failed with `why` (what is missing and how to get it), the
/// same as [`missing`].
pub fn found<T>(lookup: Result<T, String>) -> Option<T> {
    lookup.map_or_else(|why| report(under_ci(), &why), Some)
}

fn report<T>(ci: bool, line: &str) -> Option<T> {
    if ci {
        panic!("CI=true: {line}");
    }
    eprintln!("SKIPPED: {line}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_ci_a_missing_need_skips() {
        assert_eq!(report::<()>(false, "x is missing (get it)"), None);
    }

    #[test]
    #[should_panic(expected = "CI=true: x is missing (get it)")]
    fn under_ci_a_missing_need_fails_with_its_line() {
        report::<()>(true, "x is missing (get it)");
    }

    #[test]
    fn a_found_need_is_returned() {
        assert_eq!(found(Ok::<_, String>(3)), Some(3));
    }
}
