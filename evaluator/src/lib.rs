//! `evaluator`: turns a `space::Arch` into a trainable candle network and scores it: the model,
//! data, training, latency measurement and tables, ONNX export and timm import. The kernels it
//! runs on are the `kernels` crate's.

pub mod checkpoint;
pub mod data;
pub mod export;
pub mod latency;
pub mod model;
pub mod rng;
pub mod supernet;
pub mod timm;
pub mod train;
pub mod train_bench;
pub mod zero_cost;

pub use kernels::pool::{on_pool, set_threads};
