//! `evaluator`: turns a `space::Arch` into a trainable candle network and scores it.

pub mod data;
pub mod latency;
pub mod model;
pub mod ops;
pub mod timm;
pub mod train;
