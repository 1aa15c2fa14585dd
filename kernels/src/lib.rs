//! `kernels`: the network's hot operations, as candle CustomOps with backward, and the
//! forward-only kernels of the frozen eval path ([`fused`], [`MixConvPlan`]). Every public
//! function here is the API the model is built on; [`reference`] holds a slow but obviously
//! correct version of each, built from stock candle ops, that the fast kernels are tested
//! against. [`pool`] sizes the compute pool they run on; [`stats`] holds the timing statistics.
//!
//! Layout is NCHW, f32 for training and inference, f64 accepted for gradient checks. Each op is
//! a candle CustomOp with its own backward (itself a CustomOp), parallel over (n, c) planes on
//! the rayon global pool; inputs are made contiguous first, other dtypes are refused.

pub mod bench;
mod bias_act;
mod cpu;
mod depthwise;
mod disjoint;
pub use depthwise::MixConvPlan;
pub mod fused;
mod im2col;
mod norm;
mod pointwise;
pub mod pool;
pub mod reference;
mod se;
pub mod stats;

use candle_core::{Result, Tensor};
pub use space::{DepthwiseGroup, Padding};

/// Padding of one conv as (top, bottom, left, right), from the convention, kernel extent,
/// stride and input size. TF SAME pads asymmetrically (less on top/left) when the total is odd.
pub fn conv_padding(padding: Padding, kernel: usize, dilation: usize, stride: usize, h: usize, w: usize) -> [usize; 4] {
    let extent = (kernel - 1) * dilation + 1;
    match padding {
        Padding::PytorchSymmetric => {
            let p = ((stride - 1) + dilation * (kernel - 1)) / 2;
            [p, p, p, p]
        }
        Padding::TfSame => {
            let axis = |size: usize| {
                let out = size.div_ceil(stride);
                let total = ((out - 1) * stride + extent).saturating_sub(size);
                (total / 2, total - total / 2)
            };
            let ((t, b), (l, r)) = (axis(h), axis(w));
            [t, b, l, r]
        }
    }
}

/// How a MixConv is laid out: one depthwise group per kernel, contiguous channel slices.
#[derive(Clone, Debug, PartialEq)]
pub struct MixConvSpec {
    pub groups: Vec<DepthwiseGroup>,
    pub stride: usize,
    pub padding: Padding,
}

/// MixConv: group `g` of the input channels convolved depthwise with `weights[g]`
/// (`[c_g, 1, k_g, k_g]`), results concatenated in order. One group is a plain depthwise conv.
pub fn mix_conv(x: &Tensor, weights: &[Tensor], spec: &MixConvSpec) -> Result<Tensor> {
    depthwise::mix_conv(x, weights, spec)
}

/// `k x k` patches at `stride` unfolded into channels: `[n, c, h, w]` (already padded) ->
/// `[n, c * k * k, ho, wo]`, channel `(c, ky, kx)` row-major. A dense conv is then
/// [`pointwise`] with its weight reshaped to `[out, c * k * k, 1, 1]`.
pub fn im2col(x: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    im2col::im2col(x, k, stride)
}

/// Grouped 1x1 conv without shuffle: `weights[g]` is `[out_g, in_g, 1, 1]`; slices of the input
/// and output channels follow the equal split rule.
pub fn pointwise(x: &Tensor, weights: &[Tensor]) -> Result<Tensor> {
    pointwise::pointwise(x, weights)
}

/// Activation fused after batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Swish,
}

impl From<space::Activation> for Act {
    fn from(a: space::Activation) -> Self {
        match a {
            space::Activation::Relu => Act::Relu,
            space::Activation::Swish => Act::Swish,
        }
    }
}

/// Batch statistics of one training-mode BN call, for the running averages.
pub struct BatchStats {
    /// Per-channel mean, `[C]`.
    pub mean: Tensor,
    /// Per-channel unbiased variance, `[C]` (what PyTorch folds into `running_var`).
    pub var_unbiased: Tensor,
}

/// Training-mode batch norm (batch statistics, biased variance in the normalisation) followed
/// by `act`; also returns the statistics (detached) for the running averages.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, act: Act) -> Result<(Tensor, BatchStats)> {
    norm::batch_norm_train(x, gamma, beta, eps, act)
}

/// Per-channel affine `x * scale + shift` followed by `act`: eval-mode batch norm once
/// `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale` are folded.
pub fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor, act: Act) -> Result<Tensor> {
    norm::channel_affine(x, scale, shift, act)
}

/// Swish, `x * sigmoid(x)`.
pub fn swish(x: &Tensor) -> Result<Tensor> {
    norm::swish(x)
}

/// Global average pool: `[N, C, H, W] -> [N, C]`.
pub fn channel_mean(x: &Tensor) -> Result<Tensor> {
    se::channel_mean(x)
}

/// `x * gate[n, c]` broadcast over H and W: the excitation step of SE.
pub fn channel_scale(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    se::channel_scale(x, gate)
}
