//! Forward-only f32 kernels of the eval path (`evaluator::model::EvalNet`) besides its MixConv
//! (`depthwise::MixConvPlan`). Batch norm is folded into the conv weights beforehand, so each
//! conv writes `act(conv(x) + bias)` straight into a buffer the caller owns: no autograd graph,
//! no allocation per op, no separate BN or activation pass over memory. All work on one image,
//! `[channels, h * w]`.

use rayon::prelude::*;

use super::bias_act::bias_act_in_place;
use super::cpu::{activate, sigmoid, simd};
use super::disjoint::DisjointSlice;
use super::pointwise::{matmul, View};
use super::{conv_padding, Act};
use gemm::Parallelism;

/// Grouped 1x1 conv with its epilogue: `out[o, p] = act(sum_i w[o, i] x[i, p] + bias[o]
/// [+ residual[o, p]])`. `x` is `[sum cin, hw]`, `w` the groups' `[cout_g, cin_g]` packed in
/// order, `groups` their `(cin_g, cout_g)`. The columns run in tiles small enough that the
/// tile's outputs are still in cache when the bias, residual and activation are applied; with
/// `parallel`, tiles are spread over the rayon pool.
#[allow(clippy::too_many_arguments)]
pub fn pointwise_into(
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
    // About 128 KiB of outputs per tile (L2-resident), in multiples of 16 columns, and at
    // least 256: each gemm call has a fixed cost, which 64 KiB tiles paid ~300 times on
    // MixNet-L's 112x112 expand conv (measured: MixNet-S and -L ~4% faster than 64 KiB / 64).
    let tile = ((32 * 1024 / cout.max(1)).clamp(256, 1024) / 16 * 16).min(hw);
    let tiles = hw.div_ceil(tile);
    let dst = DisjointSlice::new(out);
    let run = |t: usize| {
        let (c0, c1) = (t * tile, ((t + 1) * tile).min(hw));
        // SAFETY: tile `t` touches only columns c0..c1 of `out`, disjoint from other tiles;
        // all views stay inside `x`, `w` and `out`, whose sizes were checked above.
        unsafe { pointwise_tile(x, hw, w, groups, bias, act, residual, &dst, c0..c1) };
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
/// `dst` is the `[cout, hw]` output and no other thread touches columns `cols`.
#[allow(clippy::too_many_arguments)]
unsafe fn pointwise_tile(
    x: &[f32],
    hw: usize,
    w: &[f32],
    groups: &[(usize, usize)],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    dst: &DisjointSlice<f32>,
    cols: std::ops::Range<usize>,
) {
    let (c0, n) = (cols.start, cols.len());
    let (mut ci, mut co, mut wo) = (0, 0, 0);
    for &(i, o) in groups {
        let wv: View<f32> = (w.as_ptr().add(wo), i as isize, 1);
        let xv: View<f32> = (x.as_ptr().add(ci * hw + c0), hw as isize, 1);
        matmul((o, i, n), (dst.as_mut_ptr().add(co * hw + c0), hw as isize, 1), false, wv, xv, Parallelism::None);
        for r in co..co + o {
            let row = dst.range_mut(r * hw + c0..r * hw + c0 + n);
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
/// padding (from `padding`) as zeros, so the conv becomes one [`pointwise_into`]. Each output
/// row is written once: the columns that read the image as one run (a copy at stride 1), the
/// ones that fall in the padding as zeros.
#[allow(clippy::too_many_arguments)]
pub fn im2col(
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
    cols.resize(cin * k * k * ho * wo, 0.0);
    let planes = cols.chunks_exact_mut(ho * wo);
    for (q, dst) in planes.enumerate().take(cin * k * k) {
        let (ci, ky, kx) = (q / (k * k), q / k % k, q % k);
        // Output columns `lo..hi` read input columns `ox * stride + kx - l`, all inside the image.
        let lo = l.saturating_sub(kx).div_ceil(stride).min(wo);
        let hi = (w + l).saturating_sub(kx).div_ceil(stride).clamp(lo, wo);
        for (oy, row) in dst.chunks_exact_mut(wo).enumerate() {
            let Some(iy) = (oy * stride + ky).checked_sub(t).filter(|&iy| iy < h) else {
                row.fill(0.0);
                continue;
            };
            row[..lo].fill(0.0);
            row[hi..].fill(0.0);
            if lo == hi {
                continue;
            }
            let line = &x[(ci * h + iy) * w..][..w];
            let first = lo * stride + kx - l;
            if stride == 1 {
                row[lo..hi].copy_from_slice(&line[first..first + hi - lo]);
            } else {
                row[lo..hi].iter_mut().zip(line[first..].iter().step_by(stride)).for_each(|(d, &v)| *d = v);
            }
        }
    }
    (ho, wo)
}

/// A dense layer on one vector (the classifier and the two SE layers), its weights stored
/// transposed, `[in, out]`: the output is then built as a sum of scaled weight rows, which
/// runs in vector lanes over the outputs. (As dot products over the inputs, the SE expand
/// layer's 20-100 inputs per output ran mostly in scalar tails.)
pub struct Dense {
    wt: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// From row-major `[out, in]` weights `w` and `bias` `[out]`.
    pub fn new(w: &[f32], bias: Vec<f32>) -> Self {
        let (outs, ins) = (bias.len(), w.len() / bias.len().max(1));
        assert!(ins * outs == w.len(), "Dense::new: {} weights for {outs} outputs", w.len());
        let wt = (0..ins * outs).map(|j| w[(j % outs) * ins + j / outs]).collect();
        Self { wt, bias }
    }

    pub fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `out = bias + W x`.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        assert!(self.wt.len() == x.len() * out.len() && out.len() == self.bias.len(), "Dense::apply: sizes");
        out.copy_from_slice(&self.bias);
        simd(
            #[inline(always)]
            || {
                for (row, &xv) in self.wt.chunks_exact(out.len().max(1)).zip(x) {
                    out.iter_mut().zip(row).for_each(|(o, &w)| *o += xv * w);
                }
            },
        )
    }
}

/// The SE gate from the squeezed means: `sigmoid(expand(act(reduce(m))))`; `hidden` is scratch.
pub fn se_gate(means: &[f32], reduce: &Dense, expand: &Dense, act: Act, hidden: &mut Vec<f32>, gate: &mut Vec<f32>) {
    hidden.resize(reduce.outputs(), 0.0);
    gate.resize(expand.outputs(), 0.0);
    reduce.apply(means, hidden);
    hidden.iter_mut().for_each(|v| *v = activate(*v, act));
    expand.apply(hidden, gate);
    gate.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// Packed grouped 1x1 weights (`groups` as in [`pointwise_into`]) with input column `i` of the
/// whole layer scaled by `gate[i]`: `W (x * gate) = (W diag(gate)) x`, so the SE excitation
/// costs `cin * cout` multiplies instead of a pass over the activations.
pub fn scale_columns(w: &[f32], groups: &[(usize, usize)], gate: &[f32], out: &mut Vec<f32>) {
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
    use super::super::{channel_affine, pointwise, Padding};
    use super::*;
    use candle_core::{DType, Device, Result, Tensor};
    use testkit::float::assert_close;
    use testkit::tensor::{rand, vec};

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
        use Padding::{PytorchSymmetric as Sym, TfSame as Tf};
        let cases =
            [(Tf, 3, 2, (11, 10)), (Sym, 3, 1, (6, 7)), (Sym, 5, 2, (9, 8)), (Tf, 5, 1, (5, 6)), (Sym, 3, 3, (4, 5))];
        for (padding, k, stride, (h, w)) in cases {
            let x = rand(&[1, 3, h, w], 1, DType::F32)?;
            let wt = rand(&[5, 3, k, k], 2, DType::F32)?;
            let [t, b, l, r] = conv_padding(padding, k, 1, stride, h, w);
            let want = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?.conv2d(&wt, 0, stride, 1, 1)?;
            // A dirty buffer: every column must be written.
            let mut cols = vec![f32::NAN; 7];
            let (ho, wo) = im2col(&vec(&x)?, 3, (h, w), k, stride, padding, &mut cols);
            let mut out = vec![0.0; 5 * ho * wo];
            pointwise_into(&cols, ho * wo, &vec(&wt)?, &[(3 * k * k, 5)], &[0.0; 5], Act::None, None, &mut out, false);
            let what = format!("{padding:?} k{k} s{stride}");
            assert_close(&Tensor::from_vec(out, want.shape(), &Device::Cpu)?, &want, 1e-5, &what)?;
        }
        Ok(())
    }

    #[test]
    fn dense_is_the_matrix_vector_product() {
        for (ins, outs) in [(1, 1), (7, 3), (20, 240), (240, 20), (33, 9)] {
            let w: Vec<f32> = (0..ins * outs).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let x: Vec<f32> = (0..ins).map(|i| (i as f32 * 0.7).sin()).collect();
            let bias: Vec<f32> = (0..outs).map(|o| o as f32 * 0.1 - 1.0).collect();
            let mut got = vec![f32::NAN; outs];
            Dense::new(&w, bias.clone()).apply(&x, &mut got);
            for o in 0..outs {
                let want = bias[o] as f64 + (0..ins).map(|i| w[o * ins + i] as f64 * x[i] as f64).sum::<f64>();
                assert!(
                    (got[o] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{ins}x{outs} output {o}: {} vs {want}",
                    got[o]
                );
            }
        }
    }
}
