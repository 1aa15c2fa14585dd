//! The layers a MixNet is made of, each a small struct over named parameters, all running on
//! the fast ops in [`kernels`]. `train` selects batch statistics (and updates the running
//! ones) or the folded eval-mode affine. Every forward that runs an activation hands its output
//! to an [`Activations`], which keeps it only when asked to.

use candle_core::{DType, Result, Tensor, Var};
use space::{Block, Padding};

use super::params::ParamStore;
use kernels::{Act, MixConvSpec};

/// The outputs of a forward pass's activations (every ReLU or swish: after a batch norm, and in
/// squeeze-excitation), in forward order, each `[N, ...]` and detached. Collected only when
/// made by [`Activations::recording`], for scores that read them (NASWOT); the default keeps
/// nothing.
#[derive(Default)]
pub struct Activations {
    record: bool,
    outputs: Vec<Tensor>,
}

impl Activations {
    pub fn recording() -> Self {
        Self { record: true, outputs: Vec::new() }
    }

    /// Keeps `output` if this records and `act` is an activation.
    fn push(&mut self, act: Act, output: &Tensor) {
        if self.record && act != Act::None {
            self.outputs.push(output.detach());
        }
    }

    pub fn into_outputs(self) -> Vec<Tensor> {
        self.outputs
    }
}

/// BatchNorm with running statistics (PyTorch momentum convention), fused with an activation.
pub struct BatchNorm {
    /// What its tensors' names start with (`blocks.3.bn2`).
    prefix: String,
    pub(crate) gamma: Var,
    pub(crate) beta: Var,
    pub(crate) running_mean: Var,
    pub(crate) running_var: Var,
    pub(crate) eps: f64,
    pub(crate) momentum: f64,
    pub(crate) act: Act,
}

impl BatchNorm {
    pub fn new(ps: &mut ParamStore, prefix: &str, c: usize, bn: space::BatchNorm, act: Act) -> Result<Self> {
        Ok(Self {
            prefix: prefix.to_string(),
            gamma: ps.constant(format!("{prefix}.weight"), c, 1.0, true)?,
            beta: ps.constant(format!("{prefix}.bias"), c, 0.0, true)?,
            running_mean: ps.constant(format!("{prefix}.running_mean"), c, 0.0, false)?,
            running_var: ps.constant(format!("{prefix}.running_var"), c, 1.0, false)?,
            eps: bn.eps,
            momentum: bn.momentum,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool, acts: &mut Activations) -> Result<Tensor> {
        let y = match train {
            false => {
                let (scale, shift) = self.folded(self.gamma.dtype())?;
                kernels::channel_affine(x, &scale, &shift, self.act)?
            }
            true => {
                let (y, stats) = kernels::batch_norm_train(x, &self.gamma, &self.beta, self.eps, self.act)?;
                let m = self.momentum;
                self.running_mean.set(&((self.running_mean.as_tensor() * (1.0 - m))? + (stats.mean * m)?)?)?;
                self.running_var.set(&((self.running_var.as_tensor() * (1.0 - m))? + (stats.var_unbiased * m)?)?)?;
                y
            }
        };
        acts.push(self.act, &y);
        Ok(y)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Eval-mode BN as a per-channel affine computed in `dtype`: `scale = gamma / sqrt(var +
    /// eps)`, `shift = beta - mean * scale`. The eval forward folds in the model's dtype; the
    /// frozen and exported networks fold in f64 ([`Self::folded_f64`]) before scaling weights.
    pub fn folded(&self, dtype: DType) -> Result<(Tensor, Tensor)> {
        let [gamma, beta, mean, var] =
            [&self.gamma, &self.beta, &self.running_mean, &self.running_var].map(|v| v.as_tensor().to_dtype(dtype));
        let scale = (gamma? / (var? + self.eps)?.sqrt()?)?;
        let shift = (beta? - (mean? * &scale)?)?;
        Ok((scale, shift))
    }

    /// [`Self::folded`] in f64, as `(scale, shift)` per channel.
    pub fn folded_f64(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let (scale, shift) = self.folded(DType::F64)?;
        Ok((scale.to_vec1()?, shift.to_vec1()?))
    }
}

/// A dense conv (the stem) with explicit, convention-dependent padding.
pub struct Conv {
    pub(crate) weight: Var,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: Padding,
}

impl Conv {
    pub fn new(
        ps: &mut ParamStore,
        name: String,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Self> {
        let weight = ps.conv(name, [cout, cin, kernel, kernel], kernel * kernel * cout)?;
        Ok(Self { weight, kernel, stride, padding })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let [t, b, l, r] = kernels::conv_padding(self.padding, self.kernel, 1, self.stride, h, w);
        let x = if t + b + l + r > 0 { x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)? } else { x.clone() };
        // As a 1x1 conv over unfolded patches: gemm instead of candle's direct loop.
        let (cout, cin, k, _) = self.weight.dims4()?;
        let flat = self.weight.as_tensor().reshape((cout, cin * k * k, 1, 1))?;
        kernels::pointwise(&kernels::im2col(&x, self.kernel, self.stride)?, &[flat])
    }
}

/// A grouped 1x1 conv (no shuffle), one weight per group.
pub struct Pointwise {
    pub(crate) weights: Vec<Tensor>,
}

impl Pointwise {
    pub fn new(ps: &mut ParamStore, prefix: &str, cin: usize, cout: usize, groups: usize) -> Result<Self> {
        let weights = Block::pointwise_splits(cin, cout, groups)
            .into_iter()
            .enumerate()
            .map(|(g, (i, o))| Ok(ps.conv(format!("{prefix}.{g}.weight"), [o, i, 1, 1], o)?.as_tensor().clone()))
            .collect::<Result<_>>()?;
        Ok(Self { weights })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::pointwise(x, &self.weights)
    }
}

/// MixConv: one depthwise kernel per channel group.
pub struct MixConv {
    pub(crate) weights: Vec<Tensor>,
    pub(crate) spec: MixConvSpec,
}

impl MixConv {
    pub fn new(ps: &mut ParamStore, prefix: &str, block: &Block, padding: Padding) -> Result<Self> {
        let groups = block.depthwise_groups();
        let weights = groups
            .iter()
            .enumerate()
            .map(|(g, d)| {
                let shape = [d.channels, 1, d.kernel, d.kernel];
                Ok(ps.conv(format!("{prefix}.{g}.weight"), shape, d.kernel * d.kernel)?.as_tensor().clone())
            })
            .collect::<Result<_>>()?;
        Ok(Self { weights, spec: MixConvSpec { groups, stride: block.stride, padding } })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::mix_conv(x, &self.weights, &self.spec)
    }
}

/// Squeeze-excitation: pool, 1x1 reduce (bias), the block's act, 1x1 expand (bias), sigmoid gate.
pub struct SqueezeExcite {
    pub(crate) reduce_w: Var,
    pub(crate) reduce_b: Var,
    pub(crate) expand_w: Var,
    pub(crate) expand_b: Var,
    pub(crate) act: Act,
}

impl SqueezeExcite {
    pub fn new(ps: &mut ParamStore, prefix: &str, mid: usize, se: usize, act: Act) -> Result<Self> {
        Ok(Self {
            reduce_w: ps.conv(format!("{prefix}.reduce.weight"), [se, mid, 1, 1], se)?,
            reduce_b: ps.constant(format!("{prefix}.reduce.bias"), se, 0.0, true)?,
            expand_w: ps.conv(format!("{prefix}.expand.weight"), [mid, se, 1, 1], mid)?,
            expand_b: ps.constant(format!("{prefix}.expand.bias"), mid, 0.0, true)?,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor, acts: &mut Activations) -> Result<Tensor> {
        let [rw, rb, ew, eb] = [&self.reduce_w, &self.reduce_b, &self.expand_w, &self.expand_b].map(|v| v.as_tensor());
        squeeze_excite(x, [rw, rb, ew, eb], self.act, acts)
    }
}

/// Squeeze-excitation of `x` with `[reduce weight, reduce bias, expand weight, expand bias]`
/// (`[se, mid, 1, 1]`, `[se]`, `[mid, se, 1, 1]`, `[mid]`).
pub fn squeeze_excite(x: &Tensor, [rw, rb, ew, eb]: [&Tensor; 4], act: Act, acts: &mut Activations) -> Result<Tensor> {
    let dense = |v: &Tensor, w: &Tensor, b: &Tensor| -> Result<Tensor> {
        let w = w.flatten_from(1)?;
        v.matmul(&w.t()?)?.broadcast_add(b)
    };
    let pooled = kernels::channel_mean(x)?;
    let s = dense(&pooled, rw, rb)?;
    let s = match act {
        Act::Swish => kernels::swish(&s)?,
        Act::Relu => s.relu()?,
        Act::None => s,
    };
    acts.push(act, &s);
    let gate = candle_nn::ops::sigmoid(&dense(&s, ew, eb)?)?;
    kernels::channel_scale(x, &gate)
}
