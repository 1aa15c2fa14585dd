//! The pieces of `nas fidelity`, which asks whether a search's trial scores rank networks the way
//! full training does: [`truth`] reads a ground-truth file (NAS-Bench-Macro's format) and draws a
//! sample spread over its FLOPs; [`stats`] measures rank agreement; [`report`] gathers the
//! statistics with their bootstrap intervals.

pub mod report;
pub mod run;
pub mod stats;
pub mod truth;

pub use report::{rank_report, Estimate, RankReport};
pub use truth::{CodeRule, Entry, Truth, NAS_BENCH_MACRO};
