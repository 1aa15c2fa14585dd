//! Patches unfolded into channels (im2col), so that a dense conv becomes a 1x1 conv on gemm:
//! the stem (3 input channels, 3x3, stride 2), where candle's direct conv2d took 9% of batch-1
//! inference.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{check_dtypes, dispatch, filled, min_planes, slice, Real};

/// Unfolding `[n, c, h, w]` (already padded) into `[n, c * k * k, ho, wo]`.
#[derive(Clone, Copy, Debug)]
struct Im2Col {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    ho: usize,
    wo: usize,
}

impl Im2Col {
    /// Column plane `q = (image, channel, ky, kx)` flattened: its image plane and tap.
    fn source(&self, q: usize) -> (usize, usize, usize) {
        let kk = self.k * self.k;
        (q / kk, q % kk / self.k, q % self.k)
    }

    fn fwd<T: Real>(&self, x: &[T]) -> Vec<T> {
        let (plane_in, plane_out) = (self.h * self.w, self.ho * self.wo);
        let fill = |cols: &mut [MaybeUninit<T>]| {
            cols.par_chunks_mut(plane_out).with_min_len(min_planes(plane_out)).enumerate().for_each(|(q, dst)| {
                let (p, ky, kx) = self.source(q);
                let src = &x[p * plane_in..(p + 1) * plane_in];
                for (oy, row) in dst.chunks_exact_mut(self.wo).enumerate() {
                    let line = &src[(oy * self.s + ky) * self.w + kx..];
                    for (d, &v) in row.iter_mut().zip(line.iter().step_by(self.s)) {
                        d.write(v);
                    }
                }
            })
        };
        // SAFETY: one column plane per (image, channel, tap) covers `cols`; each row of a plane
        // is written in full (the input holds `(wo - 1) * s + k` columns for every tap).
        unsafe { filled(self.n * self.c * self.k * self.k * plane_out, fill) }
    }

    /// The input gradient: every column's gradient added back where it was read from.
    fn bwd<T: Real>(&self, g: &[T]) -> Vec<T> {
        let (plane_in, plane_out, kk) = (self.h * self.w, self.ho * self.wo, self.k * self.k);
        let mut gx = vec![T::ZERO; self.n * self.c * plane_in];
        gx.par_chunks_mut(plane_in).with_min_len(min_planes(plane_in)).enumerate().for_each(|(p, dst)| {
            for tap in 0..kk {
                let (ky, kx) = (tap / self.k, tap % self.k);
                let src = &g[(p * kk + tap) * plane_out..(p * kk + tap + 1) * plane_out];
                for (oy, row) in src.chunks_exact(self.wo).enumerate() {
                    let line = &mut dst[(oy * self.s + ky) * self.w + kx..];
                    for (d, &v) in line.iter_mut().step_by(self.s).zip(row) {
                        *d += v;
                    }
                }
            }
        });
        gx
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.n, self.c * self.k * self.k, self.ho, self.wo));
        dispatch!(self.name(), s, T => Ok((T::storage(self.fwd::<T>(slice(self.name(), s, l)?)), shape)))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Im2ColBwd(*self))?))
    }
}

/// Backward of [`Im2Col`] over the columns' gradient.
struct Im2ColBwd(Im2Col);

impl CustomOp1 for Im2ColBwd {
    fn name(&self) -> &'static str {
        "im2col_bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let o = &self.0;
        let shape = Shape::from((o.n, o.c, o.h, o.w));
        dispatch!(self.name(), s, T => Ok((T::storage(o.bwd::<T>(slice(self.name(), s, l)?)), shape)))
    }
}

/// Fast [`super::im2col`].
pub(crate) fn im2col(x: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if k == 0 || stride == 0 || h < k || w < k {
        bail!("im2col: kernel {k} and stride {stride} on a {h}x{w} input (need k, stride >= 1 and k <= h, w)")
    }
    check_dtypes("im2col", &[x])?;
    let op = Im2Col { n, c, h, w, k, s: stride, ho: (h - k) / stride + 1, wo: (w - k) / stride + 1 };
    x.contiguous()?.apply_op1(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use testkit::grad::{check_against, grad_check};
    use testkit::tensor::rand;

    /// The dense conv the stem runs: im2col, then a 1x1 conv on the reshaped weight.
    fn conv(t: &[Tensor], stride: usize) -> Result<Tensor> {
        let (co, ci, k, _) = t[1].dims4()?;
        super::super::pointwise(&im2col(&t[0], k, stride)?, &[t[1].reshape((co, ci * k * k, 1, 1))?])
    }

    /// Sizes where every input column is read: candle's conv2d backward returns a narrower input
    /// gradient otherwise (the finite-difference test covers that case).
    #[test]
    fn conv_through_im2col_matches_candle_conv2d() -> Result<()> {
        for (n, (h, w), k, stride) in [(2, (9, 11), 3, 2), (1, (7, 7), 3, 1), (3, (11, 13), 5, 2), (2, (4, 6), 1, 1)] {
            let ts = vec![rand(&[n, 3, h, w], 1, DType::F32)?, rand(&[4, 3, k, k], 2, DType::F32)?];
            let slow = |t: &[Tensor]| t[0].conv2d(&t[1], 0, stride, 1, 1);
            check_against(&|t| conv(t, stride), &slow, &ts, &format!("{n}x3x{h}x{w} k{k} s{stride}"))?;
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let ts = vec![rand(&[2, 2, 7, 6], 3, DType::F64)?, rand(&[3, 2, 3, 3], 4, DType::F64)?];
        grad_check(&|t| conv(t, 2), &ts, 40, "im2col conv")
    }

    #[test]
    fn rejects_a_kernel_larger_than_the_input() -> Result<()> {
        let x = rand(&[1, 3, 2, 5], 5, DType::F32)?;
        assert!(im2col(&x, 3, 1).is_err());
        assert!(im2col(&x, 1, 0).is_err());
        Ok(())
    }
}
