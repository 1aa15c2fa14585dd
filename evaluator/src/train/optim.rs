//! Optimisers over named parameters: SGD (PyTorch semantics, optional Nesterov), RMSProp with
//! TensorFlow semantics (the MnasNet/MixNet recipe) and AdamW.
//!
//! Updates run in place on the parameters' f32 storage (one pass per tensor, split across rayon
//! threads), so a step costs a few memory sweeps and no tensor allocations. State lives in plain
//! `Vec<f32>` buffers and is exported as named tensors (`{param}/{buffer}`) plus a small
//! serde struct, which is enough to resume bit-exactly.
//!
//! Weight decay never touches rank-1 parameters (biases, BN scales and shifts) nor anything
//! inside a `bn*` module; see [`takes_weight_decay`]. Only f32 CPU parameters are supported.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{bail, CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Result, Storage, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// SGD with momentum as PyTorch's `torch.optim.SGD` (dampening 0): the buffer starts as the
/// first gradient; L2 decay is added to the gradient.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { momentum: 0.9, nesterov: false, weight_decay: 0.0 }
    }
}

/// RMSProp as TF1's `RMSPropOptimizer` (and timm's `RMSpropTF` with `lr_in_momentum`):
/// `ms = ms + (1 - decay) * (g^2 - ms)` with `ms` initialised to 1.0, `eps` added inside the
/// square root, and the learning rate applied inside the momentum buffer
/// (`mom = momentum * mom + lr * g / sqrt(ms + eps)`, `p -= mom`), so a changing LR (warm-up)
/// behaves as in TF. L2 decay is added to the gradient, as the TF recipe adds it to the loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsPropTfConfig {
    pub decay: f64,
    pub momentum: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for RmsPropTfConfig {
    /// The MnasNet/MixNet recipe.
    fn default() -> Self {
        Self { decay: 0.9, momentum: 0.9, eps: 1e-3, weight_decay: 1e-5 }
    }
}

/// AdamW as PyTorch's `torch.optim.AdamW`: decoupled decay `p *= 1 - lr * wd`, bias-corrected
/// moments, `eps` added outside the square root.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// Which optimiser, with its hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    Sgd(SgdConfig),
    RmsPropTf(RmsPropTfConfig),
    AdamW(AdamWConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::RmsPropTf(RmsPropTfConfig::default())
    }
}

impl OptimizerConfig {
    /// Rejects out-of-range hyperparameters with one line naming the field.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| -> Result<()> {
            if !(0.0..1.0).contains(&v) {
                bail!("optimizer: {name} = {v} must lie in [0, 1)")
            }
            Ok(())
        };
        let non_neg = |name: &str, v: f64, strict: bool| -> Result<()> {
            if !v.is_finite() || v < 0.0 || (strict && v == 0.0) {
                bail!("optimizer: {name} = {v} must be {}", if strict { "> 0" } else { ">= 0" })
            }
            Ok(())
        };
        match *self {
            Self::Sgd(c) => {
                unit("momentum", c.momentum)?;
                non_neg("weight_decay", c.weight_decay, false)?;
                if c.nesterov && c.momentum == 0.0 {
                    bail!("optimizer: nesterov needs momentum > 0")
                }
            }
            Self::RmsPropTf(c) => {
                unit("decay", c.decay)?;
                unit("momentum", c.momentum)?;
                non_neg("eps", c.eps, true)?;
                non_neg("weight_decay", c.weight_decay, false)?;
            }
            Self::AdamW(c) => {
                unit("beta1", c.beta1)?;
                unit("beta2", c.beta2)?;
                non_neg("eps", c.eps, true)?;
                non_neg("weight_decay", c.weight_decay, false)?;
            }
        }
        Ok(())
    }

    /// Names of the per-parameter state buffers, in export order.
    fn buffers(&self) -> &'static [&'static str] {
        match *self {
            Self::Sgd(c) if c.momentum == 0.0 => &[],
            Self::Sgd(_) => &["momentum_buffer"],
            Self::RmsPropTf(c) if c.momentum == 0.0 => &["square_avg"],
            Self::RmsPropTf(_) => &["square_avg", "momentum_buffer"],
            Self::AdamW(_) => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Initial value of each buffer: TF starts the mean square at 1.0, everything else at 0.
    fn initial(&self, buffer: usize) -> f32 {
        match self {
            Self::RmsPropTf(_) if buffer == 0 => 1.0,
            _ => 0.0,
        }
    }
}

/// True when L2 / decoupled weight decay applies: rank >= 2 and not inside a BN module.
pub fn takes_weight_decay(name: &str, shape: &[usize]) -> bool {
    let module = name.rsplit_once('.').map_or("", |(m, _)| m);
    shape.len() >= 2 && !module.split('.').any(|seg| seg.starts_with("bn"))
}

/// Serialisable part of the optimiser state; the buffers travel as named tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerState {
    pub config: OptimizerConfig,
    /// Calls to `step`.
    pub steps: u64,
    /// Updates each parameter has received (AdamW bias correction counts per parameter, as
    /// PyTorch does; parameters without a gradient are skipped). Absent = never updated.
    pub param_steps: BTreeMap<String, u64>,
}

struct Slot {
    name: String,
    var: Var,
    lr_scale: f64,
    decay: bool,
    frozen: bool,
    steps: u64,
    state: Vec<Vec<f32>>,
}

/// One optimiser over named parameters, with per-parameter LR scale and freezing.
pub struct Optimizer {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    steps: u64,
}

impl Optimizer {
    /// All parameters must be contiguous f32 CPU tensors with distinct names.
    pub fn new(params: Vec<(String, Var)>, config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        let mut seen = std::collections::HashSet::new();
        let mut slots = Vec::with_capacity(params.len());
        for (name, var) in params {
            let t = var.as_tensor();
            if t.dtype() != DType::F32 || !t.device().is_cpu() || !t.is_contiguous() {
                bail!("optimizer: parameter `{name}` must be a contiguous f32 CPU tensor, found {:?}", t.dtype())
            }
            if !seen.insert(name.clone()) {
                bail!("optimizer: parameter `{name}` given twice")
            }
            let decay = takes_weight_decay(&name, t.dims());
            slots.push(Slot { name, var, lr_scale: 1.0, decay, frozen: false, steps: 0, state: Vec::new() });
        }
        Ok(Self { config, slots, steps: 0 })
    }

    /// Sets each parameter's LR multiplier from its name (e.g. 0.1 for the backbone).
    pub fn set_lr_scale(&mut self, scale: impl Fn(&str) -> f64) -> Result<()> {
        for slot in &mut self.slots {
            let s = scale(&slot.name);
            if !s.is_finite() || s < 0.0 {
                bail!("optimizer: LR scale {s} for `{}` must be finite and >= 0", slot.name)
            }
            slot.lr_scale = s;
        }
        Ok(())
    }

    /// Freezes (skips) every parameter whose name matches; the others are unfrozen.
    pub fn freeze(&mut self, frozen: impl Fn(&str) -> bool) {
        for slot in &mut self.slots {
            slot.frozen = frozen(&slot.name);
        }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Calls to [`Optimizer::step`] so far (restored by [`Optimizer::import`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Names of the parameters that get weight decay.
    pub fn decayed_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().filter(|s| s.decay).map(|s| s.name.as_str())
    }

    /// Updates every unfrozen parameter that has a gradient in `grads` with base rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        if !lr.is_finite() || lr < 0.0 {
            bail!("optimizer: learning rate {lr} must be finite and >= 0")
        }
        self.steps += 1;
        for slot in self.slots.iter_mut().filter(|s| !s.frozen) {
            if let Some(grad) = grads.get(slot.var.as_tensor()) {
                slot.update(&self.config, grad, lr * slot.lr_scale)?;
            }
        }
        Ok(())
    }

    /// State for a checkpoint: hyperparameters and counters, and buffers named `{param}/{buffer}`.
    pub fn export(&self) -> Result<(OptimizerState, Vec<(String, Tensor)>)> {
        let mut tensors = Vec::new();
        let mut param_steps = BTreeMap::new();
        for slot in self.slots.iter().filter(|s| s.steps > 0) {
            param_steps.insert(slot.name.clone(), slot.steps);
            let shape = slot.var.as_tensor().shape();
            for (buf, data) in self.config.buffers().iter().zip(&slot.state) {
                tensors.push((format!("{}/{buf}", slot.name), Tensor::from_slice(data, shape, &Device::Cpu)?));
            }
        }
        Ok((OptimizerState { config: self.config, steps: self.steps, param_steps }, tensors))
    }

    /// Restores an [`Optimizer::export`]; LR scales and freezing stay as set on `self`.
    pub fn import(&mut self, state: &OptimizerState, tensors: &HashMap<String, Tensor>) -> Result<()> {
        state.config.validate()?;
        if let Some(name) = state.param_steps.keys().find(|n| !self.slots.iter().any(|s| &&s.name == n)) {
            bail!("optimizer state: parameter `{name}` is not in this model")
        }
        let buffers = state.config.buffers();
        let mut restored = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let steps = state.param_steps.get(&slot.name).copied().unwrap_or(0);
            let mut bufs = Vec::new();
            for buf in buffers.iter().filter(|_| steps > 0) {
                bufs.push(read_buffer(tensors, &format!("{}/{buf}", slot.name), slot.var.as_tensor().dims())?);
            }
            restored.push((steps, bufs));
        }
        // Applied only after every buffer checked, so a failed import leaves `self` untouched.
        for (slot, (steps, bufs)) in self.slots.iter_mut().zip(restored) {
            (slot.steps, slot.state) = (steps, bufs);
        }
        (self.config, self.steps) = (state.config, state.steps);
        Ok(())
    }
}

fn read_buffer(tensors: &HashMap<String, Tensor>, key: &str, dims: &[usize]) -> Result<Vec<f32>> {
    let Some(t) = tensors.get(key) else { bail!("optimizer state: tensor `{key}` is missing") };
    if t.dims() != dims || t.dtype() != DType::F32 {
        bail!("optimizer state: tensor `{key}` is {:?} {:?}, expected F32 {dims:?}", t.dtype(), t.dims())
    }
    t.flatten_all()?.to_vec1::<f32>()
}

impl Slot {
    fn update(&mut self, config: &OptimizerConfig, grad: &Tensor, lr: f64) -> Result<()> {
        let param = self.var.as_tensor();
        if grad.dims() != param.dims() || grad.dtype() != DType::F32 {
            bail!(
                "optimizer: gradient of `{}` is {:?} {:?}, expected F32 {:?}",
                self.name,
                grad.dtype(),
                grad.dims(),
                param.dims()
            )
        }
        let grad = grad.contiguous()?;
        if self.steps == 0 {
            let n = param.elem_count();
            self.state = (0..config.buffers().len()).map(|i| vec![config.initial(i); n]).collect();
        }
        self.steps += 1;
        let (decay, first, steps, state) = (self.decay, self.steps == 1, self.steps, &mut self.state);
        let kernel = |p: &mut [f32], g: &[f32]| match *config {
            OptimizerConfig::Sgd(c) => sgd(c, lr, decay, first, p, g, state),
            OptimizerConfig::RmsPropTf(c) => rmsprop_tf(c, lr, decay, p, g, state),
            OptimizerConfig::AdamW(c) => adamw(c, lr, decay, steps, p, g, state),
        };
        param.inplace_op2(&grad, &WithSrc(RefCell::new(kernel)))
    }
}

fn sgd(c: SgdConfig, lr: f64, decay: bool, first: bool, p: &mut [f32], g: &[f32], state: &mut [Vec<f32>]) {
    let (lr, mom) = (lr as f32, c.momentum as f32);
    let wd = if decay { c.weight_decay as f32 } else { 0.0 };
    match state {
        [] => zip0(p, g, |p, g| *p -= lr * (g + wd * *p)),
        [buf] => zip1(p, g, buf, |p, g, b| {
            let d = g + wd * *p;
            *b = if first { d } else { mom * *b + d };
            *p -= lr * if c.nesterov { d + mom * *b } else { *b };
        }),
        _ => unreachable!("sgd keeps at most one buffer"),
    }
}

fn rmsprop_tf(c: RmsPropTfConfig, lr: f64, decay: bool, p: &mut [f32], g: &[f32], state: &mut [Vec<f32>]) {
    let (lr, mom, eps, rho) = (lr as f32, c.momentum as f32, c.eps as f32, (1.0 - c.decay) as f32);
    let wd = if decay { c.weight_decay as f32 } else { 0.0 };
    match state {
        [ms] => zip1(p, g, ms, |p, g, ms| {
            let d = g + wd * *p;
            *ms += rho * (d * d - *ms);
            *p -= lr * (d / (*ms + eps).sqrt());
        }),
        [ms, buf] => zip2(p, g, ms, buf, |p, g, ms, b| {
            let d = g + wd * *p;
            *ms += rho * (d * d - *ms);
            *b = mom * *b + lr * (d / (*ms + eps).sqrt());
            *p -= *b;
        }),
        _ => unreachable!("rmsprop keeps one or two buffers"),
    }
}

fn adamw(c: AdamWConfig, lr: f64, decay: bool, steps: u64, p: &mut [f32], g: &[f32], state: &mut [Vec<f32>]) {
    let [m, v] = state else { unreachable!("adamw keeps two buffers") };
    let (bc1, bc2) = adam_bias_corrections(c.beta1, c.beta2, steps);
    let keep = if decay { (1.0 - lr * c.weight_decay) as f32 } else { 1.0 };
    let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
    let (step_size, bc2_sqrt) = ((lr / bc1) as f32, bc2.sqrt() as f32);
    zip2(p, g, m, v, |p, g, m, v| {
        *p *= keep;
        (*m, *v) = adam_moments(b1, b2, *m, *v, g);
        *p -= step_size * (*m / (v.sqrt() / bc2_sqrt + eps));
    });
}

/// Adam's moment estimates after gradient `g`: `(b1 m + (1 - b1) g, b2 v + (1 - b2) g^2)`, in
/// the caller's precision (the trainer's f32 buffers; the search controller's f64 sums).
#[inline]
pub fn adam_moments<F>(b1: F, b2: F, m: F, v: F, g: F) -> (F, F)
where
    F: Copy + From<f32> + std::ops::Add<Output = F> + std::ops::Sub<Output = F> + std::ops::Mul<Output = F>,
{
    let one = F::from(1.0);
    (b1 * m + (one - b1) * g, b2 * v + (one - b2) * g * g)
}

/// Adam's bias corrections after `steps` steps: `(1 - beta1^steps, 1 - beta2^steps)`.
pub fn adam_bias_corrections(beta1: f64, beta2: f64, steps: u64) -> (f64, f64) {
    let t = steps.min(i32::MAX as u64) as i32;
    (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
}

/// Elements per rayon task: large enough to amortise scheduling, small enough to split a
/// 1M-element conv weight across cores.
const CHUNK: usize = 1 << 15;

fn zip0(p: &mut [f32], g: &[f32], f: impl Fn(&mut f32, f32) + Sync) {
    p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(p, g)| p.iter_mut().zip(g).for_each(|(p, g)| f(p, *g)));
}

fn zip1(p: &mut [f32], g: &[f32], a: &mut [f32], f: impl Fn(&mut f32, f32, &mut f32) + Sync) {
    p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(a.par_chunks_mut(CHUNK)).for_each(|((p, g), a)| {
        p.iter_mut().zip(g).zip(a).for_each(|((p, g), a)| f(p, *g, a));
    });
}

fn zip2(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], f: impl Fn(&mut f32, f32, &mut f32, &mut f32) + Sync) {
    let chunks = p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK));
    chunks.zip(a.par_chunks_mut(CHUNK)).zip(b.par_chunks_mut(CHUNK)).for_each(|(((p, g), a), b)| {
        p.iter_mut().zip(g).zip(a).zip(b).for_each(|(((p, g), a), b)| f(p, *g, a, b));
    });
}

/// The contiguous f32 slice behind a CPU storage and layout.
fn f32_range(layout: &Layout) -> Result<(usize, usize)> {
    match layout.contiguous_offsets() {
        Some(r) => Ok(r),
        None => bail!("in-place f32 update needs a contiguous tensor"),
    }
}

/// In-place op handing the destination slice and a source slice to a closure.
struct WithSrc<F>(RefCell<F>);

impl<F: FnMut(&mut [f32], &[f32])> InplaceOp2 for WithSrc<F> {
    fn name(&self) -> &'static str {
        "mixnas-f32-update"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let ((a, b), (c, d)) = (f32_range(l1)?, f32_range(l2)?);
        match (s1, s2) {
            (CpuStorage::F32(dst), CpuStorage::F32(src)) => (self.0.borrow_mut())(&mut dst[a..b], &src[c..d]),
            _ => bail!("in-place f32 update needs f32 tensors"),
        }
        Ok(())
    }
}

/// In-place op handing the destination slice to a closure.
struct Alone<F>(RefCell<F>);

impl<F: FnMut(&mut [f32])> InplaceOp1 for Alone<F> {
    fn name(&self) -> &'static str {
        "mixnas-f32-mutate"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (a, b) = f32_range(layout)?;
        match storage {
            CpuStorage::F32(dst) => (self.0.borrow_mut())(&mut dst[a..b]),
            _ => bail!("in-place f32 update needs an f32 tensor"),
        }
        Ok(())
    }
}

/// Runs `f` on the contiguous f32 data of `t` in place (all clones of a `Var` see the change).
pub(crate) fn mutate_f32(t: &Tensor, f: impl FnMut(&mut [f32])) -> Result<()> {
    t.inplace_op1(&Alone(RefCell::new(f)))
}

/// Runs `f` on the f32 data of `t`, reading the storage without a copy when contiguous.
pub(crate) fn read_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = f32_range(layout)?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Ok(f(&v[a..b])),
        _ => bail!("expected an f32 CPU tensor"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{load_tensors, save_tensors};
    use testkit::float::assert_abs_close;

    fn var(dims: &[usize], v: f32) -> Var {
        Var::from_tensor(&Tensor::full(v, dims, &Device::Cpu).unwrap()).unwrap()
    }

    /// Gradients equal to `g` everywhere (d/dp of g * sum(p)); a tensor factor keeps a zero
    /// gradient in the store, where a scalar 0 would drop it.
    fn grads_const(params: &[(String, Var)], g: f32) -> GradStore {
        let g = Tensor::new(g, &Device::Cpu).unwrap();
        let terms: Vec<Tensor> =
            params.iter().map(|(_, v)| v.as_tensor().broadcast_mul(&g).unwrap().sum_all().unwrap()).collect();
        Tensor::stack(&terms, 0).unwrap().sum_all().unwrap().backward().unwrap()
    }

    fn first(v: &Var) -> f32 {
        v.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
    }

    const TOL: f64 = 1e-6;

    fn weight_and_bias() -> Vec<(String, Var)> {
        vec![("blocks.0.conv.weight".into(), var(&[2, 2], 1.0)), ("blocks.0.conv.bias".into(), var(&[2], 1.0))]
    }

    #[test]
    fn sgd_momentum_and_nesterov_match_pytorch() {
        let cfg = |nesterov| OptimizerConfig::Sgd(SgdConfig { momentum: 0.9, nesterov, weight_decay: 0.1 });
        let p = weight_and_bias();
        let mut opt = Optimizer::new(p.clone(), cfg(false)).unwrap();
        opt.step(&grads_const(&p, 0.5), 0.1).unwrap();
        assert_abs_close(first(&p[0].1), 0.94, TOL); // d = 0.5 + 0.1 * 1; buf = d
        assert_abs_close(first(&p[1].1), 0.95, TOL); // bias: no decay
        opt.step(&grads_const(&p, 0.5), 0.1).unwrap();
        assert_abs_close(first(&p[0].1), 0.94 - 0.1 * (0.9 * 0.6 + 0.594), TOL);
        let p = weight_and_bias();
        let mut opt = Optimizer::new(p.clone(), cfg(true)).unwrap();
        opt.step(&grads_const(&p, 0.5), 0.1).unwrap();
        assert_abs_close(first(&p[0].1), 1.0 - 0.1 * (0.6 + 0.9 * 0.6), TOL);
    }

    #[test]
    fn adamw_single_step_matches_pytorch() {
        let p = weight_and_bias();
        let cfg = AdamWConfig { weight_decay: 0.01, ..Default::default() };
        let mut opt = Optimizer::new(p.clone(), OptimizerConfig::AdamW(cfg)).unwrap();
        opt.step(&grads_const(&p, 0.5), 0.1).unwrap();
        // p * (1 - lr wd) - lr * m_hat / (sqrt(v_hat) + eps), m_hat = 0.5, sqrt(v_hat) = 0.5.
        assert_abs_close(first(&p[0].1), 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), TOL);
        assert_abs_close(first(&p[1].1), 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), TOL);
    }

    #[test]
    fn rmsprop_tf_first_steps() {
        let p = vec![("head.fc.weight".to_string(), var(&[3, 2], 1.0))];
        let cfg = RmsPropTfConfig { weight_decay: 0.0, ..Default::default() };
        let mut opt = Optimizer::new(p.clone(), OptimizerConfig::RmsPropTf(cfg)).unwrap();
        opt.step(&grads_const(&p, 0.5), 0.1).unwrap();
        // ms = 1 + 0.1 (0.25 - 1) = 0.925; mom = 0.1 * 0.5 / sqrt(0.926).
        assert_abs_close(first(&p[0].1), 0.948_040_554_109_203_4, TOL);
        opt.step(&grads_const(&p, 0.2), 0.05).unwrap();
        // ms = 0.8365; mom = 0.9 mom + 0.05 * 0.2 / sqrt(0.8375).
        assert_abs_close(first(&p[0].1), 0.890_349_885_513_323_4, TOL);
    }

    #[test]
    fn no_weight_decay_on_rank1_and_bn() {
        assert!(takes_weight_decay("head.fc.weight", &[10, 1280]));
        assert!(takes_weight_decay("blocks.3.se.reduce.weight", &[8, 48, 1, 1]));
        assert!(!takes_weight_decay("blocks.3.se.reduce.bias", &[8]));
        assert!(!takes_weight_decay("stem.bn.weight", &[16]));
        assert!(!takes_weight_decay("blocks.3.bn1.weight", &[4, 4]));
        for cfg in [
            OptimizerConfig::Sgd(SgdConfig { momentum: 0.0, nesterov: false, weight_decay: 0.5 }),
            OptimizerConfig::RmsPropTf(RmsPropTfConfig { weight_decay: 0.5, ..Default::default() }),
            OptimizerConfig::AdamW(AdamWConfig { weight_decay: 0.5, ..Default::default() }),
        ] {
            // Zero gradient: only weight decay can move a parameter.
            let p =
                vec![("blocks.3.bn1.bias".into(), var(&[4], 2.0)), ("blocks.3.conv.weight".into(), var(&[4, 4], 2.0))];
            let mut opt = Optimizer::new(p.clone(), cfg).unwrap();
            opt.step(&grads_const(&p, 0.0), 0.1).unwrap();
            assert_eq!(first(&p[0].1), 2.0, "{cfg:?}");
            assert!(first(&p[1].1) < 2.0, "{cfg:?}");
            assert_eq!(opt.decayed_names().collect::<Vec<_>>(), ["blocks.3.conv.weight"]);
        }
    }

    #[test]
    fn frozen_and_lr_scale() {
        let p = vec![("stem.conv.weight".into(), var(&[2, 2], 1.0)), ("head.fc.weight".into(), var(&[2, 2], 1.0))];
        let cfg = OptimizerConfig::Sgd(SgdConfig { momentum: 0.0, ..Default::default() });
        let mut opt = Optimizer::new(p.clone(), cfg).unwrap();
        opt.set_lr_scale(|n| if n.starts_with("head.") { 1.0 } else { 0.5 }).unwrap();
        opt.step(&grads_const(&p, 1.0), 0.1).unwrap();
        assert_abs_close(first(&p[0].1), 0.95, TOL);
        assert_abs_close(first(&p[1].1), 0.9, TOL);
        opt.freeze(|n| n.starts_with("stem."));
        opt.step(&grads_const(&p, 1.0), 0.1).unwrap();
        assert_abs_close(first(&p[0].1), 0.95, TOL);
        assert_abs_close(first(&p[1].1), 0.8, TOL);
        assert!(opt.set_lr_scale(|_| -1.0).is_err());
    }

    fn model() -> Vec<(String, Var)> {
        let t = |d: &[usize], s: f32| Var::from_tensor(&(Tensor::randn(0f32, s, d, &Device::Cpu).unwrap())).unwrap();
        vec![
            ("blocks.0.conv.weight".into(), t(&[64, 3, 3, 3], 0.5)),
            ("blocks.0.bn1.weight".into(), t(&[64], 1.0)),
            ("head.fc.weight".into(), t(&[10, 64], 0.2)),
            ("head.fc.bias".into(), t(&[10], 0.1)),
        ]
    }

    /// A gradient that depends on the parameters, so successive steps differ.
    fn grads_of(p: &[(String, Var)]) -> GradStore {
        let terms: Vec<Tensor> = p
            .iter()
            .map(|(_, v)| (v.as_tensor().sqr().unwrap() + v.as_tensor().sin().unwrap()).unwrap().sum_all().unwrap())
            .collect();
        Tensor::stack(&terms, 0).unwrap().sum_all().unwrap().backward().unwrap()
    }

    fn snapshot(p: &[(String, Var)]) -> Vec<Vec<u32>> {
        p.iter()
            .map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect())
            .collect()
    }

    fn copy(p: &[(String, Var)]) -> Vec<(String, Var)> {
        p.iter().map(|(n, v)| (n.clone(), Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap())).collect()
    }

    #[test]
    fn export_import_continues_bitwise() {
        let dir = tempfile::tempdir().unwrap();
        for cfg in [
            OptimizerConfig::Sgd(SgdConfig { nesterov: true, weight_decay: 1e-4, ..Default::default() }),
            OptimizerConfig::RmsPropTf(RmsPropTfConfig::default()),
            OptimizerConfig::AdamW(AdamWConfig::default()),
        ] {
            let straight = model();
            let resumed = copy(&straight);
            let mut a = Optimizer::new(straight.clone(), cfg).unwrap();
            a.step(&grads_of(&straight), 0.05).unwrap();
            a.step(&grads_of(&straight), 0.04).unwrap();

            let mut b = Optimizer::new(resumed.clone(), cfg).unwrap();
            b.step(&grads_of(&resumed), 0.05).unwrap();
            let (state, tensors) = b.export().unwrap();
            let path = dir.path().join("optim.safetensors");
            let meta = HashMap::from([("optimizer".to_string(), serde_json::to_string(&state).unwrap())]);
            save_tensors(&path, &tensors, Some(meta)).unwrap();
            drop(b);

            let (tensors, meta) = load_tensors(&path).unwrap();
            let state: OptimizerState = serde_json::from_str(&meta["optimizer"]).unwrap();
            let mut c = Optimizer::new(resumed.clone(), SgdConfig::default().into_config()).unwrap();
            c.import(&state, &tensors).unwrap();
            assert_eq!((c.steps(), *c.config()), (1, cfg));
            c.step(&grads_of(&resumed), 0.04).unwrap();
            assert_eq!(snapshot(&straight), snapshot(&resumed), "{cfg:?}");
        }
    }

    #[test]
    fn import_refuses_wrong_shapes() {
        let p = model();
        let mut opt = Optimizer::new(p.clone(), OptimizerConfig::AdamW(AdamWConfig::default())).unwrap();
        opt.step(&grads_of(&p), 0.1).unwrap();
        let (state, tensors) = opt.export().unwrap();
        let mut tensors: HashMap<_, _> = tensors.into_iter().collect();
        tensors.insert("head.fc.bias/exp_avg".into(), Tensor::zeros(11, DType::F32, &Device::Cpu).unwrap());
        let err = opt.import(&state, &tensors).unwrap_err().to_string();
        assert!(err.contains("`head.fc.bias/exp_avg` is F32 [11], expected F32 [10]"), "{err}");
    }

    impl SgdConfig {
        fn into_config(self) -> OptimizerConfig {
            OptimizerConfig::Sgd(self)
        }
    }

    /// Run with `--ignored --nocapture`: median step time over ~4.1M parameters in MixNet-like
    /// tensor sizes (one 1.3M FC weight, many small convs and BN vectors).
    #[test]
    #[ignore]
    fn bench_step_4m_params() {
        let mut p = vec![("head.fc.weight".to_string(), var(&[1000, 1280], 0.01))];
        let mut total = 1_280_000;
        let mut i = 0;
        while total < 4_100_000 {
            let (c_in, c_out) = (40 + 8 * (i % 20), 120 + 16 * (i % 30));
            p.push((format!("blocks.{i}.conv_pw.weight"), var(&[c_out, c_in, 1, 1], 0.01)));
            p.push((format!("blocks.{i}.bn1.weight"), var(&[c_out], 1.0)));
            p.push((format!("blocks.{i}.bn1.bias"), var(&[c_out], 0.0)));
            total += c_out * c_in + 2 * c_out;
            i += 1;
        }
        let grads = grads_const(&p, 1e-3);
        for cfg in [
            OptimizerConfig::Sgd(SgdConfig { nesterov: true, weight_decay: 1e-5, ..Default::default() }),
            OptimizerConfig::RmsPropTf(RmsPropTfConfig::default()),
            OptimizerConfig::AdamW(AdamWConfig::default()),
        ] {
            let mut opt = Optimizer::new(p.clone(), cfg).unwrap();
            opt.step(&grads, 1e-3).unwrap(); // allocates the state buffers
            let mut times = Vec::new();
            for _ in 0..50 {
                let t = std::time::Instant::now();
                opt.step(&grads, 1e-3).unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            let kind = serde_json::to_value(cfg).unwrap()["kind"].clone();
            println!("{kind}: {total} params in {} tensors, median step {:.2} ms", p.len(), times[25]);
        }
    }
}
