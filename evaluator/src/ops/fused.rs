//! Forward-only f32 kernels of the eval path ([`crate::model::EvalNet`]). Batch norm is folded
//! into the conv weights beforehand, so each conv writes `act(conv(x) + bias)` straight into a
//! buffer the caller owns: no autograd graph, no allocation per op, no separate BN or
//! activation pass over memory. All work on one image, `[channels, h * w]`.

use rayon::prelude::*;

use super::cpu::{activate, sigmoid, simd};
use super::pointwise::{matmul, View};
use super::{conv_padding, Act, MixConvSpec};
use gemm::Parallelism;

/// `row = act(row)`, vectorised.
#[inline(always)]
fn act_in_place(row: &mut [f32], act: Act) {
    match act {
        Act::None => {}
        Act::Relu => simd(
            #[inline(always)]
            || row.iter_mut().for_each(|v| *v = v.max(0.0)),
        ),
        Act::Swish => simd(
            #[inline(always)]
            || row.iter_mut().for_each(|v| *v = activate(*v, Act::Swish)),
        ),
    }
}

/// A raw output pointer that column tiles running on several threads write through; every
/// tile owns a disjoint set of columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tiles write disjoint elements (see `pointwise_into`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// Grouped 1x1 conv with its epilogue: `out[o, p] = act(sum_i w[o, i] x[i, p] + bias[o]
/// [+ residual[o, p]])`. `x` is `[sum cin, hw]`, `w` the groups' `[cout_g, cin_g]` packed in
/// order, `groups` their `(cin_g, cout_g)`. The columns run in tiles small enough that the
/// tile's outputs are still in cache when the bias, residual and activation are applied; with
/// `parallel`, tiles are spread over the rayon pool.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pointwise_into(
    x: &[f32],
    hw: usize,
    w: &[f32],
    groups: &[(usize, usize)],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    parallel: bool,
) {
    let cout: usize = groups.iter().map(|g| g.1).sum();
    let cin: usize = groups.iter().map(|g| g.0).sum();
    assert!(x.len() == cin * hw && out.len() == cout * hw && bias.len() == cout, "pointwise_into: sizes");
    assert!(residual.is_none_or(|r| r.len() == out.len()), "pointwise_into: residual size");
    // About 64 KiB of outputs per tile, in multiples of 16 columns.
    let tile = ((16 * 1024 / cout.max(1)).clamp(64, 1024) / 16 * 16).min(hw);
    let tiles = hw.div_ceil(tile);
    let dst = Out(out.as_mut_ptr());
    let run = |t: usize| {
        let (c0, c1) = (t * tile, ((t + 1) * tile).min(hw));
        // SAFETY: tile `t` touches only columns c0..c1 of `out`, disjoint from other tiles;
        // all views stay inside `x`, `w` and `out`, whose sizes were checked above.
        unsafe { pointwise_tile(x, hw, w, groups, bias, act, residual, dst, c0..c1) };
    };
    if parallel && tiles > 1 {
        (0..tiles).into_par_iter().for_each(run);
    } else {
        (0..tiles).for_each(run);
    }
}

/// Columns `cols` of [`pointwise_into`].
///
/// # Safety
/// `dst` points at the `[cout, hw]` output and no other thread touches columns `cols`.
#[allow(clippy::too_many_arguments)]
unsafe fn pointwise_tile(
    x: &[f32],
    hw: usize,
    w: &[f32],
    groups: &[(usize, usize)],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    dst: Out,
    cols: std::ops::Range<usize>,
) {
    let (c0, n) = (cols.start, cols.len());
    let (mut ci, mut co, mut wo) = (0, 0, 0);
    for &(i, o) in groups {
        for r in co..co + o {
            let row = std::slice::from_raw_parts_mut(dst.0.add(r * hw + c0), n);
            match residual {
                Some(res) => row.iter_mut().zip(&res[r * hw + c0..]).for_each(|(d, &s)| *d = s + bias[r]),
                None => row.fill(bias[r]),
            }
        }
        let wv: View<f32> = (w.as_ptr().add(wo), i as isize, 1);
        let xv: View<f32> = (x.as_ptr().add(ci * hw + c0), hw as isize, 1);
        matmul((o, i, n), (dst.0.add(co * hw + c0), hw as isize, 1), true, wv, xv, Parallelism::None);
        if act != Act::None {
            for r in co..co + o {
                act_in_place(std::slice::from_raw_parts_mut(dst.0.add(r * hw + c0), n), act);
            }
        }
        (ci, co, wo) = (ci + i, co + o, wo + i * o);
    }
}

/// The geometry of one depthwise group on one input size.
#[derive(Clone, Debug)]
struct DwGroup {
    c0: usize,
    channels: usize,
    k: usize,
    dil: usize,
    /// Offset of the group's `[channels, k, k]` weights in the packed weights.
    w0: usize,
    pad_t: usize,
    pad_l: usize,
    /// Padded plane: `hp` rows of `wp` columns (enough for every tap of every output).
    hp: usize,
    wp: usize,
}

/// A MixConv on a fixed input size, for [`depthwise_into`].
#[derive(Clone, Debug)]
pub(crate) struct DepthwisePlan {
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    stride: usize,
    groups: Vec<DwGroup>,
}

impl DepthwisePlan {
    /// The plan of `spec` on `h x w` planes; `None` if the groups disagree on the output size
    /// (the model validates its architectures, so that does not happen for a built network).
    pub(crate) fn new(spec: &MixConvSpec, h: usize, w: usize) -> Option<Self> {
        let s = spec.stride;
        let (mut groups, mut c0, mut w0, mut out) = (vec![], 0, 0, None);
        for g in &spec.groups {
            let [t, b, l, r] = conv_padding(spec.padding, g.kernel, g.dilation, s, h, w);
            let ext = (g.kernel - 1) * g.dilation + 1;
            let size = ((h + t + b).checked_sub(ext)? / s + 1, (w + l + r).checked_sub(ext)? / s + 1);
            if *out.get_or_insert(size) != size {
                return None;
            }
            let (hp, wp) = ((size.0 - 1) * s + ext, (size.1 - 1) * s + ext);
            groups.push(DwGroup {
                c0,
                channels: g.channels,
                k: g.kernel,
                dil: g.dilation,
                w0,
                pad_t: t,
                pad_l: l,
                hp,
                wp,
            });
            c0 += g.channels;
            w0 += g.channels * g.kernel * g.kernel;
        }
        let (ho, wo) = out?;
        Some(Self { h, w, ho, wo, stride: s, groups })
    }

    pub(crate) fn channels(&self) -> usize {
        self.groups.iter().map(|g| g.channels).sum()
    }
}

/// Per-thread scratch of [`depthwise_into`]: the padded plane split into `stride` column
/// phases, and one output row.
#[derive(Default)]
struct DwScratch {
    phases: Vec<f32>,
    row: Vec<f32>,
}

/// MixConv with its epilogue: `out[c] = act(dw_c(x[c]) + bias[c])` for one image, and, when
/// `means` is given, `means[c]` = the mean of `out[c]` (the SE squeeze, taken while the row is
/// in registers). `w` holds the groups' `[channels, k, k]` weights packed in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_into(
    plan: &DepthwisePlan,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    act: Act,
    out: &mut [f32],
    means: Option<&mut [f32]>,
    parallel: bool,
) {
    let c = plan.channels();
    let (plane_in, plane_out) = (plan.h * plan.w, plan.ho * plan.wo);
    assert!(x.len() == c * plane_in && out.len() == c * plane_out && bias.len() == c, "depthwise_into: sizes");
    let one = |s: &mut DwScratch, ch: usize, o: &mut [f32]| -> f32 {
        let g = plan.groups.iter().find(|g| ch < g.c0 + g.channels).expect("channel in a group");
        let kk = g.k * g.k;
        let wk = &w[g.w0 + (ch - g.c0) * kk..g.w0 + (ch - g.c0 + 1) * kk];
        let xs = &x[ch * plane_in..(ch + 1) * plane_in];
        simd(
            #[inline(always)]
            || plane(plan, g, wk, bias[ch], act, xs, o, s),
        )
    };
    let inv = 1.0 / plane_out as f32;
    match (means, parallel) {
        (Some(m), true) => out
            .par_chunks_mut(plane_out)
            .zip(m.par_iter_mut())
            .enumerate()
            .for_each_init(DwScratch::default, |s, (ch, (o, m))| *m = one(s, ch, o) * inv),
        (None, true) => out.par_chunks_mut(plane_out).enumerate().for_each_init(DwScratch::default, |s, (ch, o)| {
            one(s, ch, o);
        }),
        (m, false) => {
            let mut s = DwScratch::default();
            let mut m = m;
            for (ch, o) in out.chunks_exact_mut(plane_out).enumerate() {
                let sum = one(&mut s, ch, o);
                if let Some(m) = m.as_deref_mut() {
                    m[ch] = sum * inv;
                }
            }
        }
    }
}

/// One channel of [`depthwise_into`]; returns the sum of its outputs. The plane is copied into
/// a zero-padded buffer split by column phase (`phase r` holds padded columns `r, r + s, ...`),
/// so every tap of every output row is one contiguous multiply-add of `wo` elements, whatever
/// the stride, dilation or padding.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn plane(
    plan: &DepthwisePlan,
    g: &DwGroup,
    wk: &[f32],
    bias: f32,
    act: Act,
    x: &[f32],
    out: &mut [f32],
    s: &mut DwScratch,
) -> f32 {
    let st = plan.stride;
    let pw = g.wp.div_ceil(st); // columns per phase
    let phase_len = g.hp * pw;
    s.phases.clear();
    s.phases.resize(st * phase_len, 0.0);
    for (iy, row) in x.chunks_exact(plan.w).enumerate() {
        let py = iy + g.pad_t;
        if py >= g.hp {
            break;
        }
        for (ix, &v) in row.iter().enumerate() {
            let px = ix + g.pad_l;
            if px < g.wp {
                s.phases[(px % st) * phase_len + py * pw + px / st] = v;
            }
        }
    }
    s.row.clear();
    s.row.resize(plan.wo, 0.0);
    let mut sum = 0.0f32;
    for (oy, orow) in out.chunks_exact_mut(plan.wo).enumerate() {
        s.row.fill(bias);
        for ky in 0..g.k {
            let py = oy * st + ky * g.dil;
            for kx in 0..g.k {
                let px = kx * g.dil;
                let start = (px % st) * phase_len + py * pw + px / st;
                let wv = wk[ky * g.k + kx];
                for (a, &v) in s.row.iter_mut().zip(&s.phases[start..start + plan.wo]) {
                    *a += wv * v;
                }
            }
        }
        for (o, &a) in orow.iter_mut().zip(&s.row) {
            let v = activate(a, act);
            *o = v;
            sum += v;
        }
    }
    sum
}

/// im2col of one image for a dense conv: `x` `[cin, h, w]` to `[cin * k * k, ho * wo]`, the
/// padding (from `padding`) as zeros, so the conv becomes one [`pointwise_into`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col(
    x: &[f32],
    cin: usize,
    (h, w): (usize, usize),
    k: usize,
    stride: usize,
    padding: super::Padding,
    cols: &mut Vec<f32>,
) -> (usize, usize) {
    let [t, b, l, r] = conv_padding(padding, k, 1, stride, h, w);
    let (ho, wo) = ((h + t + b - k) / stride + 1, (w + l + r - k) / stride + 1);
    cols.clear();
    cols.resize(cin * k * k * ho * wo, 0.0);
    for ci in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let dst = &mut cols[((ci * k + ky) * k + kx) * ho * wo..][..ho * wo];
                for oy in 0..ho {
                    let Some(iy) = (oy * stride + ky).checked_sub(t).filter(|&iy| iy < h) else { continue };
                    for ox in 0..wo {
                        if let Some(ix) = (ox * stride + kx).checked_sub(l).filter(|&ix| ix < w) {
                            dst[oy * wo + ox] = x[(ci * h + iy) * w + ix];
                        }
                    }
                }
            }
        }
    }
    (ho, wo)
}

/// `out[j] = bias[j] + sum_k w[j, k] x[k]` (`w` row-major `[out, in]`): the classifier and the
/// two SE layers, where the input is one vector.
pub(crate) fn dense_into(x: &[f32], w: &[f32], bias: &[f32], out: &mut [f32]) {
    assert!(w.len() == bias.len() * x.len() && out.len() == bias.len(), "dense_into: sizes");
    for ((o, row), &b) in out.iter_mut().zip(w.chunks_exact(x.len().max(1))).zip(bias) {
        *o = b + simd(
            #[inline(always)]
            || dot(row, x),
        );
    }
}

/// Dot product with eight partial sums, so it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut part = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            part[i] += x[i] * y[i];
        }
    }
    part.iter().sum::<f32>() + tail
}

/// The SE gate from the squeezed means: `sigmoid(W_e act(W_r m + b_r) + b_e)`; `hidden` is
/// scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn se_gate(
    means: &[f32],
    (reduce_w, reduce_b): (&[f32], &[f32]),
    (expand_w, expand_b): (&[f32], &[f32]),
    act: Act,
    hidden: &mut Vec<f32>,
    gate: &mut Vec<f32>,
) {
    hidden.resize(reduce_b.len(), 0.0);
    gate.resize(expand_b.len(), 0.0);
    dense_into(means, reduce_w, reduce_b, hidden);
    hidden.iter_mut().for_each(|v| *v = activate(*v, act));
    dense_into(hidden, expand_w, expand_b, gate);
    gate.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// Packed grouped 1x1 weights (`groups` as in [`pointwise_into`]) with input column `i` of the
/// whole layer scaled by `gate[i]`: `W (x * gate) = (W diag(gate)) x`, so the SE excitation
/// costs `cin * cout` multiplies instead of a pass over the activations.
pub(crate) fn scale_columns(w: &[f32], groups: &[(usize, usize)], gate: &[f32], out: &mut Vec<f32>) {
    out.clear();
    let mut ci = 0;
    let mut rest = w;
    for &(i, o) in groups {
        let (gw, tail) = rest.split_at(i * o);
        for row in gw.chunks_exact(i) {
            out.extend(row.iter().zip(&gate[ci..ci + i]).map(|(&w, &g)| w * g));
        }
        (ci, rest) = (ci + i, tail);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_close, rand};
    use super::super::{channel_affine, mix_conv, pointwise, DepthwiseGroup, Padding};
    use super::*;
    use candle_core::{DType, Device, Result, Tensor};

    fn vec(t: &Tensor) -> Result<Vec<f32>> {
        t.flatten_all()?.to_vec1::<f32>()
    }

    #[test]
    fn pointwise_into_matches_conv_then_affine() -> Result<()> {
        type Case<'a> = ((usize, usize), &'a [(usize, usize)], Act, bool, bool);
        let cases: [Case; 5] = [
            ((5, 7), &[(10, 16)], Act::Relu, false, false),
            ((40, 41), &[(6, 30)], Act::Swish, false, true),
            ((9, 9), &[(5, 6), (5, 6)], Act::None, true, false),
            ((33, 17), &[(4, 3), (3, 3), (3, 2)], Act::None, true, true),
            ((1, 1), &[(7, 5)], Act::Swish, false, false),
        ];
        for (i, ((h, w), groups, act, with_res, par)) in cases.into_iter().enumerate() {
            let (cin, cout) = (groups.iter().map(|g| g.0).sum::<usize>(), groups.iter().map(|g| g.1).sum::<usize>());
            let x = rand(&[1, cin, h, w], 1, DType::F32)?;
            let ws: Vec<Tensor> = groups
                .iter()
                .enumerate()
                .map(|(g, &(i, o))| rand(&[o, i, 1, 1], 10 + g as u64, DType::F32))
                .collect::<Result<_>>()?;
            let bias = rand(&[cout], 3, DType::F32)?;
            let res = rand(&[1, cout, h, w], 4, DType::F32)?;
            let mut want = pointwise(&x, &ws)?;
            if with_res {
                want = (want + &res)?;
            }
            let want = channel_affine(&want, &Tensor::ones(cout, DType::F32, &Device::Cpu)?, &bias, act)?;
            let packed: Vec<f32> = ws.iter().map(vec).collect::<Result<Vec<_>>>()?.concat();
            let mut out = vec![f32::NAN; cout * h * w];
            let res = vec(&res)?;
            let r = with_res.then_some(&res[..]);
            pointwise_into(&vec(&x)?, h * w, &packed, groups, &vec(&bias)?, act, r, &mut out, par);
            let got = Tensor::from_vec(out, (1, cout, h, w), &Device::Cpu)?;
            assert_close(&got, &want, 1e-5, &format!("case {i}"))?;
        }
        Ok(())
    }

    #[test]
    fn depthwise_into_matches_mix_conv_then_affine_and_mean() -> Result<()> {
        use Padding::{PytorchSymmetric as Sym, TfSame as Tf};
        let spec = |g: &[(usize, usize, usize)], stride, padding| MixConvSpec {
            groups: g
                .iter()
                .map(|&(channels, kernel, dilation)| DepthwiseGroup { channels, kernel, dilation })
                .collect(),
            stride,
            padding,
        };
        let cases = [
            ((9, 11), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 1, Sym), Act::Swish, false),
            ((9, 11), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 2, Tf), Act::Relu, true),
            ((12, 10), spec(&[(4, 3, 1), (3, 5, 1), (3, 9, 1)], 2, Sym), Act::None, false),
            ((13, 12), spec(&[(3, 3, 2), (2, 5, 3)], 1, Tf), Act::Swish, true),
            ((13, 12), spec(&[(3, 3, 3), (2, 5, 2)], 2, Sym), Act::Relu, false),
            ((7, 7), spec(&[(2, 9, 1), (3, 11, 1)], 1, Tf), Act::Swish, true),
            ((28, 28), spec(&[(5, 3, 1)], 2, Tf), Act::Relu, true),
        ];
        for (i, ((h, w), spec, act, par)) in cases.into_iter().enumerate() {
            let c: usize = spec.groups.iter().map(|g| g.channels).sum();
            let x = rand(&[1, c, h, w], 1, DType::F32)?;
            let ws: Vec<Tensor> = spec
                .groups
                .iter()
                .enumerate()
                .map(|(g, d)| rand(&[d.channels, 1, d.kernel, d.kernel], 10 + g as u64, DType::F32))
                .collect::<Result<_>>()?;
            let bias = rand(&[c], 3, DType::F32)?;
            let ones = Tensor::ones(c, DType::F32, &Device::Cpu)?;
            let want = channel_affine(&mix_conv(&x, &ws, &spec)?, &ones, &bias, act)?;
            let want_mean = super::super::channel_mean(&want)?;
            let plan = DepthwisePlan::new(&spec, h, w).unwrap();
            let packed: Vec<f32> = ws.iter().map(vec).collect::<Result<Vec<_>>>()?.concat();
            let mut out = vec![f32::NAN; c * plan.ho * plan.wo];
            let mut means = vec![f32::NAN; c];
            depthwise_into(&plan, &vec(&x)?, &packed, &vec(&bias)?, act, &mut out, Some(&mut means), par);
            let got = Tensor::from_vec(out, want.shape(), &Device::Cpu)?;
            assert_close(&got, &want, 1e-5, &format!("case {i}"))?;
            assert_close(&Tensor::from_vec(means, (1, c), &Device::Cpu)?, &want_mean, 1e-5, &format!("case {i} mean"))?;
        }
        Ok(())
    }

    #[test]
    fn im2col_then_pointwise_is_the_dense_conv() -> Result<()> {
        for (padding, stride, (h, w)) in [(Padding::TfSame, 2, (11, 10)), (Padding::PytorchSymmetric, 1, (6, 7))] {
            let x = rand(&[1, 3, h, w], 1, DType::F32)?;
            let wt = rand(&[5, 3, 3, 3], 2, DType::F32)?;
            let [t, b, l, r] = conv_padding(padding, 3, 1, stride, h, w);
            let want = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?.conv2d(&wt, 0, stride, 1, 1)?;
            let mut cols = Vec::new();
            let (ho, wo) = im2col(&vec(&x)?, 3, (h, w), 3, stride, padding, &mut cols);
            let mut out = vec![0.0; 5 * ho * wo];
            pointwise_into(&cols, ho * wo, &vec(&wt)?, &[(27, 5)], &[0.0; 5], Act::None, None, &mut out, false);
            assert_close(&Tensor::from_vec(out, want.shape(), &Device::Cpu)?, &want, 1e-5, &format!("{padding:?}"))?;
        }
        Ok(())
    }
}
