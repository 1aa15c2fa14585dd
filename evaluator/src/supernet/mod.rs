//! Weight sharing: one supernet whose tensors serve every point of a search space
//! ([`SuperNet`], sharing as Once-for-All does), trained by uniform single-path sampling
//! ([`train`], Single-Path One-Shot), and candidates scored by their inherited weights with
//! BN statistics re-estimated per candidate ([`score`]).

mod net;
pub mod score;
pub mod train;

pub use net::SuperNet;
