//! `EvalNet`: a [`MixNet`](super::MixNet) frozen for inference. Built once from the model's
//! current tensors, it folds every eval-mode batch norm into the conv before it (`w * scale`,
//! bias `shift`), so a conv, its BN and its activation are one kernel writing one buffer; the
//! SE gate is folded into the project conv's weights; and the activations live in a few
//! buffers reused across layers and calls. It runs the forward-only kernels of
//! [`kernels::fused`] and gives the logits of `MixNet::forward_eval_unfused` up to f32
//! rounding (tests).
//!
//! Weights are copied at build time: rebuild after training or loading changes the model.

use std::sync::Mutex;

use candle_core::{bail, DType, Device, Result, Tensor};
use rayon::prelude::*;

use super::layers::Conv;
use super::layers::{BatchNorm, Pointwise, SqueezeExcite};
use super::{Layer as NetLayer, MixBlock, MixNet};
use kernels::fused::{self, Dense};
use kernels::{Act, MixConvPlan, MixConvSpec, Padding};

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
}

/// Eval-mode BN as (scale, bias) per channel: the scale stays f64 to scale the conv weights.
fn fold(bn: &BatchNorm) -> Result<(Vec<f64>, Vec<f32>)> {
    let (scale, shift) = bn.folded_f64()?;
    Ok((scale, shift.into_iter().map(|s| s as f32).collect()))
}

/// Conv weights whose output channel `c` owns `per_channel` consecutive values, times `scale[c]`.
fn scale_rows(w: &[f32], per_channel: usize, scale: &[f64]) -> Vec<f32> {
    w.chunks_exact(per_channel)
        .zip(scale)
        .flat_map(|(row, &s)| row.iter().map(move |&v| (v as f64 * s) as f32))
        .collect()
}

/// A grouped 1x1 conv with its BN folded in and the activation after it.
struct Conv1x1 {
    w: Vec<f32>,
    groups: Vec<(usize, usize)>,
    bias: Vec<f32>,
    act: Act,
}

impl Conv1x1 {
    fn new(conv: &Pointwise, bn: &BatchNorm) -> Result<Self> {
        let (scale, bias) = fold(bn)?;
        let groups = conv.weights.iter().map(|w| w.dims4().map(|(o, i, _, _)| (i, o))).collect::<Result<Vec<_>>>()?;
        let mut w = Vec::new();
        let mut co = 0;
        for (t, &(i, o)) in conv.weights.iter().zip(&groups) {
            w.extend(scale_rows(&values(t)?, i, &scale[co..co + o]));
            co += o;
        }
        Ok(Self { w, groups, bias, act: bn.act })
    }
    fn cout(&self) -> usize {
        self.bias.len()
    }
}

struct Depthwise {
    spec: MixConvSpec,
    w: Vec<f32>,
    bias: Vec<f32>,
    act: Act,
}

struct Se {
    reduce: Dense,
    expand: Dense,
    act: Act,
}

impl Se {
    fn new(se: &SqueezeExcite) -> Result<Self> {
        let v = |x: &candle_core::Var| values(x.as_tensor());
        Ok(Self {
            reduce: Dense::new(&v(&se.reduce_w)?, v(&se.reduce_b)?),
            expand: Dense::new(&v(&se.expand_w)?, v(&se.expand_b)?),
            act: se.act,
        })
    }
}

struct Block {
    expand: Option<Conv1x1>,
    dw: Depthwise,
    se: Option<Se>,
    project: Conv1x1,
    residual: bool,
}

impl Block {
    fn new(b: &MixBlock) -> Result<Self> {
        let expand = b.expand.as_ref().map(|(c, bn)| Conv1x1::new(c, bn)).transpose()?;
        let (scale, bias) = fold(&b.bn2)?;
        let w = fold_depthwise(b, &scale)?;
        let dw = Depthwise { spec: b.dw.spec.clone(), w, bias, act: b.bn2.act };
        let se = b.se.as_ref().map(Se::new).transpose()?;
        Ok(Self { expand, dw, se, project: Conv1x1::new(&b.project, &b.bn3)?, residual: b.residual })
    }
}

/// The depthwise weights of all groups, packed in order, channel `c` times `scale[c]`.
fn fold_depthwise(b: &MixBlock, scale: &[f64]) -> Result<Vec<f32>> {
    let mut w = Vec::new();
    let mut c0 = 0;
    for (t, g) in b.dw.weights.iter().zip(&b.dw.spec.groups) {
        w.extend(scale_rows(&values(t)?, g.kernel * g.kernel, &scale[c0..c0 + g.channels]));
        c0 += g.channels;
    }
    Ok(w)
}

/// A dense conv (the stem, a plain 1x1 conv layer) run as im2col + gemm, BN folded in.
struct DenseConv {
    conv: Conv1x1,
    cin: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
}

impl DenseConv {
    fn new(conv: &Conv, bn: &BatchNorm) -> Result<Self> {
        let w = values(conv.weight.as_tensor())?;
        let (cout, cin, k, _) = conv.weight.dims4()?;
        let (scale, bias) = fold(bn)?;
        let folded =
            Conv1x1 { w: scale_rows(&w, cin * k * k, &scale), groups: vec![(cin * k * k, cout)], bias, act: bn.act };
        Ok(Self { conv: folded, cin, kernel: k, stride: conv.stride, padding: conv.padding })
    }

    /// `x` `[cin, h, w]` into `out` (sized here); returns the output size.
    fn run(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        cols: &mut Vec<f32>,
        out: &mut Vec<f32>,
        par: bool,
    ) -> (usize, usize) {
        let (ho, wo) = fused::im2col(x, self.cin, (h, w), self.kernel, self.stride, self.padding, cols);
        pointwise(&self.conv, cols, ho * wo, None, sized(out, self.conv.cout() * ho * wo), par);
        (ho, wo)
    }
}

/// One layer as frozen: an MBConv block or a plain conv.
enum Layer {
    MbConv(Box<Block>),
    Conv(DenseConv),
}

impl Layer {
    fn new(layer: &NetLayer) -> Result<Self> {
        Ok(match layer {
            NetLayer::MbConv(b) => Layer::MbConv(Box::new(Block::new(b)?)),
            NetLayer::Conv(conv, bn) => Layer::Conv(DenseConv::new(conv, bn)?),
        })
    }
}

/// The activations of one image, reused from layer to layer and call to call.
#[derive(Default)]
struct Buffers {
    cur: Vec<f32>,
    next: Vec<f32>,
    mid: Vec<f32>,
    dw: Vec<f32>,
    cols: Vec<f32>,
    means: Vec<f32>,
    hidden: Vec<f32>,
    gate: Vec<f32>,
    gated_w: Vec<f32>,
}

/// A MixNet frozen for eval-mode inference; see the module doc.
pub struct EvalNet {
    stem: DenseConv,
    blocks: Vec<Layer>,
    head: Conv1x1,
    classifier: Dense,
    pool: Mutex<Vec<Buffers>>,
}

impl EvalNet {
    /// Folds `net`'s current weights and running statistics.
    pub fn new(net: &MixNet) -> Result<Self> {
        let stem = DenseConv::new(&net.stem.0, &net.stem.1)?;
        let blocks = net.blocks.iter().map(Layer::new).collect::<Result<_>>()?;
        let head = Conv1x1::new(&net.head.0, &net.head.1)?;
        let classifier = Dense::new(&values(net.classifier_w.as_tensor())?, values(net.classifier_b.as_tensor())?);
        Ok(Self { stem, blocks, head, classifier, pool: Mutex::new(Vec::new()) })
    }

    /// Logits `[N, classes]` of images `[N, C, H, W]` (f32 or f64; computed in f32).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if c != self.stem.cin {
            bail!("eval forward: input has {c} channels, the network takes {}", self.stem.cin)
        }
        let data = values(&x.contiguous()?)?;
        let classes = self.classifier.outputs();
        let mut logits = vec![0.0f32; n * classes];
        let threads = rayon::current_num_threads();
        let image = |i: usize, out: &mut [f32], parallel: bool| -> Result<()> {
            let mut b = self.pool.lock().expect("buffer pool").pop().unwrap_or_default();
            let r = self.image(&data[i * c * h * w..(i + 1) * c * h * w], (h, w), &mut b, out, parallel);
            self.pool.lock().expect("buffer pool").push(b);
            r
        };
        if n > 1 && threads > 1 {
            logits.par_chunks_mut(classes).enumerate().try_for_each(|(i, out)| image(i, out, false))?;
        } else {
            logits.chunks_mut(classes).enumerate().try_for_each(|(i, out)| image(i, out, threads > 1))?;
        }
        Tensor::from_vec(logits, (n, classes), &Device::Cpu)?.to_device(x.device())
    }

    /// One image `[C, H, W]` to its logits.
    fn image(&self, x: &[f32], (h, w): (usize, usize), b: &mut Buffers, logits: &mut [f32], par: bool) -> Result<()> {
        let (mut h, mut w) = self.stem.run(x, (h, w), &mut b.cols, &mut b.cur, par);
        let mut len = self.stem.conv.cout() * h * w;
        for layer in &self.blocks {
            ((h, w), len) = match layer {
                Layer::MbConv(blk) => self.block(blk, (h, w), len, b, par)?,
                Layer::Conv(conv) => {
                    let (ho, wo) = conv.run(&b.cur[..len], (h, w), &mut b.cols, &mut b.next, par);
                    std::mem::swap(&mut b.cur, &mut b.next);
                    ((ho, wo), conv.conv.cout() * ho * wo)
                }
            };
        }
        let head = sized(&mut b.next, self.head.cout() * h * w);
        pointwise(&self.head, &b.cur[..len], h * w, None, head, par);
        b.means.clear();
        b.means.extend(head.chunks_exact(h * w).map(|p| p.iter().sum::<f32>() / (h * w) as f32));
        self.classifier.apply(&b.means, logits);
        Ok(())
    }

    /// One block from the first `len` values of `b.cur` back into `b.cur`; returns the output
    /// size and length.
    fn block(
        &self,
        blk: &Block,
        (h, w): (usize, usize),
        len: usize,
        b: &mut Buffers,
        par: bool,
    ) -> Result<((usize, usize), usize)> {
        let Buffers { cur, next, mid, dw, means, hidden, gate, gated_w, .. } = b;
        let cur = &cur[..len];
        let input = match &blk.expand {
            Some(e) => {
                let mid = sized(mid, e.cout() * h * w);
                pointwise(e, cur, h * w, None, mid, par);
                &*mid
            }
            None => cur,
        };
        let plan = MixConvPlan::new(&blk.dw.spec, h, w)?;
        let (c, (ho, wo)) = (plan.channels(), plan.out_size());
        let dw = sized(dw, c * ho * wo);
        means.resize(c, 0.0);
        let want_means = blk.se.is_some().then_some(&mut means[..]);
        plan.run(input, &blk.dw.w, &blk.dw.bias, blk.dw.act, dw, want_means, par);
        let p = &blk.project;
        let weights = match &blk.se {
            Some(se) => {
                fused::se_gate(means, &se.reduce, &se.expand, se.act, hidden, gate);
                if ho * wo < p.cout() {
                    // Small planes: scaling the activations is fewer multiplies than the weights.
                    dw.chunks_exact_mut(ho * wo)
                        .zip(gate.iter())
                        .for_each(|(plane, &g)| plane.iter_mut().for_each(|v| *v *= g));
                    &p.w[..]
                } else {
                    fused::scale_columns(&p.w, &p.groups, gate, gated_w);
                    &gated_w[..]
                }
            }
            None => &p.w[..],
        };
        let hw = ho * wo;
        let out_len = p.cout() * hw;
        let residual = blk.residual.then_some(cur);
        fused::pointwise_into(dw, hw, weights, &p.groups, &p.bias, p.act, residual, sized(next, out_len), par);
        std::mem::swap(&mut b.cur, &mut b.next);
        Ok(((ho, wo), out_len))
    }
}

/// The first `len` values of `buf`, grown if needed but never shrunk: the buffers change size
/// from layer to layer, and a shrink followed by a grow would zero the new part every time.
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

fn pointwise(c: &Conv1x1, x: &[f32], hw: usize, residual: Option<&[f32]>, out: &mut [f32], par: bool) {
    fused::pointwise_into(x, hw, &c.w, &c.groups, &c.bias, c.act, residual, out, par);
}
