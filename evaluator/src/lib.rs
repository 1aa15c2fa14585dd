//! `evaluator`: turns a `space::Arch` into a trainable candle network and scores it.

pub mod model;
pub mod ops;
pub mod timm;
