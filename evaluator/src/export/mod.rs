//! Export of trained networks: ONNX for deployment (`onnx`), and running an exported model in
//! ONNX Runtime through Python (`ort`) to check it against our own forward; a folder that
//! PyTorch builds with timm's own builder, to train further there (`timm`).

pub mod onnx;
pub mod ort;
mod proto;
pub mod timm;
