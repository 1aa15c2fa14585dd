//! Forward-only f32 kernels of the eval path ([`crate::model::EvalNet`]) besides its MixConv
//! (`depthwise::MixConvPlan`). Batch norm is folded into the conv weights beforehand, so each
//! conv writes `act(conv(x) + bias)` straight into a buffer the caller owns: no autograd graph,
//! no allocation per op, no separate BN or activation pass over memory. All work on one image,
//! `[channels, h * w]`.

use rayon::prelude::*;

use super::bias_act::bias_act_in_place;
use super::cpu::{activate, sigmoid, simd};
use super::pointwise::{matmul, View};
use super::{conv_padding, Act};
use gemm::Parallelism;

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
        let wv: View<f32> = (w.as_ptr().add(wo), i as isize, 1);
        let xv: View<f32> = (x.as_ptr().add(ci * hw + c0), hw as isize, 1);
        matmul((o, i, n), (dst.0.add(co * hw + c0), hw as isize, 1), false, wv, xv, Parallelism::None);
        for r in co..co + o {
            let row = std::slice::from_raw_parts_mut(dst.0.add(r * hw + c0), n);
            let res = residual.map(|res| &res[r * hw + c0..r * hw + c0 + n]);
            epilogue(row, bias[r], res, act);
        }
        (ci, co, wo) = (ci + i, co + o, wo + i * o);
    }
}

/// `row = act(row + bias [+ residual])` in one pass, while the tile is in cache.
#[inline(always)]
fn epilogue(row: &mut [f32], bias: f32, residual: Option<&[f32]>, act: Act) {
    match (residual, act) {
        (Some(res), Act::None) => simd(
            #[inline(always)]
            || row.iter_mut().zip(res).for_each(|(v, &r)| *v += bias + r),
        ),
        (Some(res), act) => {
            row.iter_mut().zip(res).for_each(|(v, &r)| *v += r);
            bias_act_in_place(row, bias, act)
        }
        (None, act) => bias_act_in_place(row, bias, act),
    }
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

/// Dot product with 32 partial sums: four vectors of eight, so the adds of one do not wait on
/// the one before (with a single vector the loop runs at the add's latency).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const PARTS: usize = 32;
    let mut part = [0.0f32; PARTS];
    let (ac, bc) = (a.chunks_exact(PARTS), b.chunks_exact(PARTS));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..PARTS {
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
    use super::super::testutil::{assert_close, rand, vec};
    use super::super::{channel_affine, pointwise, Padding};
    use super::*;
    use candle_core::{DType, Device, Result, Tensor};

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
