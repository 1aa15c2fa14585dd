//! Export of trained networks for deployment: ONNX (`onnx`), and running an exported model in
//! ONNX Runtime through Python (`ort`) to check it against our own forward.

pub mod onnx;
pub mod ort;
mod proto;
