//! Grouped 1x1 conv as one CustomOp over `(x, packed weights)`: a gemm per (image, group) on
//! strided views, so groups need no narrow/cat copies and the backward no broadcast reductions.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::cpu::{check_dtypes, dispatch, filled, slice, unpack, Real};

/// `x: [n, cin, hw]` to `y: [n, cout, hw]`; group `g` maps `cin[g]` channels to `cout[g]`.
#[derive(Clone, Debug)]
struct Geom {
    n: usize,
    h: usize,
    w: usize,
    cin: Vec<usize>,
    cout: Vec<usize>,
}

impl Geom {
    fn hw(&self) -> usize {
        self.h * self.w
    }
    fn in_total(&self) -> usize {
        self.cin.iter().sum()
    }
    fn out_total(&self) -> usize {
        self.cout.iter().sum()
    }
    fn w_len(&self) -> usize {
        self.cin.iter().zip(&self.cout).map(|(i, o)| i * o).sum()
    }
    /// Per group: (first in channel, first out channel, weight offset, cin, cout).
    fn groups(&self) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> + '_ {
        let (mut ci, mut co, mut wo) = (0, 0, 0);
        self.cin.iter().zip(&self.cout).map(move |(&i, &o)| {
            let r = (ci, co, wo, i, o);
            (ci, co, wo) = (ci + i, co + o, wo + i * o);
            r
        })
    }
    /// Few pixels per image (late stages of a small input): one gemm per pixel across the batch
    /// (`n` rows) beats one per image, whose product is only `hw` columns wide. Measured on
    /// MixNet-S shapes at batch 64: 2x faster at 1x1 and 2x2 planes, 5x slower at 4x4 (the
    /// strided views cost gemm more than a thin product does).
    fn pixel_major(&self) -> bool {
        self.hw() * 8 <= self.n
    }
    /// gemm's own threading, for the pixel-major products.
    fn gemm_threads() -> Parallelism {
        match rayon::current_num_threads() {
            1 => Parallelism::None,
            t => Parallelism::Rayon(t),
        }
    }
    /// Batch-level threading when there are enough images, else let gemm split each product.
    fn parallelism(&self) -> (bool, Parallelism) {
        let threads = rayon::current_num_threads();
        if self.n >= threads || threads == 1 {
            (true, Parallelism::None)
        } else {
            (false, Parallelism::Rayon(threads))
        }
    }
}

/// Matrix view: pointer, row stride, column stride (in elements).
pub(super) type View<T> = (*const T, isize, isize);
/// [`View`] of a matrix that is written.
pub(super) type ViewMut<T> = (*mut T, isize, isize);

/// `dst (m x n) = [dst +] a (m x k) * b (k x n)`.
///
/// # Safety
/// Every view must cover its matrix inside a live allocation, and `dst` must not alias `a`/`b`.
pub(super) unsafe fn matmul<T: Real>(
    mkn: (usize, usize, usize),
    dst: ViewMut<T>,
    acc: bool,
    a: View<T>,
    b: View<T>,
    par: Parallelism,
) {
    let (m, k, n) = mkn;
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2,
        dst.1,
        acc,
        a.0,
        a.2,
        a.1,
        b.0,
        b.2,
        b.1,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        par,
    );
}

struct PointwiseOp {
    geo: Geom,
}

impl PointwiseOp {
    fn fwd<T: Real>(&self, x: &[T], w: &[T]) -> Vec<T> {
        let geo = &self.geo;
        let (hw, cin, cout) = (geo.hw(), geo.in_total(), geo.out_total());
        if geo.pixel_major() {
            // SAFETY: the products cover every (image, out channel, pixel).
            return unsafe { filled(geo.n * cout * hw, |y| self.fwd_pixels(x, w, y)) };
        }
        let (batch_par, par) = geo.parallelism();
        let one = |(n, y): (usize, &mut [MaybeUninit<T>])| {
            let xn = &x[n * cin * hw..(n + 1) * cin * hw];
            for (ci, co, wo, i, o) in geo.groups() {
                // SAFETY: the views lie inside `w`, `xn` and `y`, whose sizes follow from `geo`;
                // without `acc` gemm only writes `y` (never reads it).
                unsafe {
                    let wv = (w.as_ptr().add(wo), i as isize, 1);
                    let xv = (xn.as_ptr().add(ci * hw), hw as isize, 1);
                    matmul((o, i, hw), (y.as_mut_ptr().add(co * hw).cast(), hw as isize, 1), false, wv, xv, par);
                }
            }
        };
        let fill = |out: &mut [MaybeUninit<T>]| {
            if batch_par {
                out.par_chunks_mut(cout * hw).enumerate().for_each(one);
            } else {
                out.chunks_mut(cout * hw).enumerate().for_each(one);
            }
        };
        // SAFETY: the groups' output rows cover every image's `cout * hw` outputs.
        unsafe { filled(geo.n * cout * hw, fill) }
    }

    /// `y[:, group out, p] = x[:, group in, p] * w_g^T` for each pixel `p`.
    fn fwd_pixels<T: Real>(&self, x: &[T], w: &[T], y: &mut [MaybeUninit<T>]) {
        let geo = &self.geo;
        let (n, hw, cin, cout) = (geo.n, geo.hw() as isize, geo.in_total() as isize, geo.out_total() as isize);
        for p in 0..hw {
            for (ci, co, wo, i, o) in geo.groups() {
                // SAFETY: views inside `x`, `w`, `y`, whose sizes follow from `geo`.
                unsafe {
                    let xv = (x.as_ptr().offset(ci as isize * hw + p), cin * hw, hw);
                    let wt = (w.as_ptr().add(wo), 1, i as isize);
                    let yv = (y.as_mut_ptr().offset(co as isize * hw + p).cast(), cout * hw, hw);
                    matmul((n, i, o), yv, false, xv, wt, Geom::gemm_threads());
                }
            }
        }
    }
}

impl CustomOp2 for PointwiseOp {
    fn name(&self) -> &'static str {
        "pointwise"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.geo;
        let shape = Shape::from((g.n, g.out_total(), g.h, g.w));
        dispatch!(self.name(), s1, T => {
            let out = self.fwd::<T>(slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
            Ok((T::storage(out), shape))
        })
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let bwd = PointwiseBwd { geo: self.geo.clone() };
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &bwd)?;
        let g = &self.geo;
        let parts = unpack(&packed, &[&[g.n, g.in_total(), g.h, g.w], &[g.w_len()]])?;
        Ok((Some(parts[0].clone()), Some(parts[1].clone())))
    }
}

/// Backward of [`PointwiseOp`] over `(x, packed w, grad)`, giving `[grad x | grad w]` flat.
struct PointwiseBwd {
    geo: Geom,
}

impl PointwiseBwd {
    /// `gx[n, group in] = w_g^T * grad[n, group out]`.
    fn grad_x<T: Real>(&self, w: &[T], grad: &[T], gx: &mut [T]) {
        let geo = &self.geo;
        let (hw, cin, cout) = (geo.hw(), geo.in_total(), geo.out_total());
        let (batch_par, par) = geo.parallelism();
        let one = |(n, gxn): (usize, &mut [T])| {
            let gn = &grad[n * cout * hw..(n + 1) * cout * hw];
            for (ci, co, wo, i, o) in geo.groups() {
                // SAFETY: views inside `w`, `gn`, `gxn`; w_g^T is w_g read with swapped strides.
                unsafe {
                    let wt = (w.as_ptr().add(wo), 1, i as isize);
                    let gv = (gn.as_ptr().add(co * hw), hw as isize, 1);
                    matmul((i, o, hw), (gxn.as_mut_ptr().add(ci * hw), hw as isize, 1), false, wt, gv, par);
                }
            }
        };
        if batch_par {
            gx.par_chunks_mut(cin * hw).enumerate().for_each(one);
        } else {
            gx.chunks_mut(cin * hw).enumerate().for_each(one);
        }
    }

    /// `gw_g += grad[n, group out] * x[n, group in]^T` summed over images.
    fn grad_w_images<T: Real>(&self, x: &[T], grad: &[T], images: std::ops::Range<usize>, gw: &mut [T]) {
        let geo = &self.geo;
        let (hw, cin, cout) = (geo.hw(), geo.in_total(), geo.out_total());
        let (batch_par, par) = geo.parallelism();
        let par = if batch_par { Parallelism::None } else { par };
        for n in images {
            for (ci, co, wo, i, o) in geo.groups() {
                // SAFETY: views inside `grad`, `x`, `gw`; x^T is x read with swapped strides.
                unsafe {
                    let gv = (grad.as_ptr().add((n * cout + co) * hw), hw as isize, 1);
                    let xt = (x.as_ptr().add((n * cin + ci) * hw), 1, hw as isize);
                    matmul((o, hw, i), (gw.as_mut_ptr().add(wo), i as isize, 1), true, gv, xt, par);
                }
            }
        }
    }

    /// Both gradients one pixel at a time: `gx[:, group in, p] = grad[:, group out, p] * w_g`
    /// and `gw_g += grad[:, group out, p]^T * x[:, group in, p]`.
    fn run_pixels<T: Real>(&self, x: &[T], w: &[T], grad: &[T], gx: &mut [T], gw: &mut [T]) {
        let geo = &self.geo;
        let (n, hw, cin, cout) = (geo.n, geo.hw() as isize, geo.in_total() as isize, geo.out_total() as isize);
        for p in 0..hw {
            for (ci, co, wo, i, o) in geo.groups() {
                // SAFETY: views inside `x`, `w`, `grad`, `gx`, `gw`, whose sizes follow from `geo`.
                unsafe {
                    let gv = (grad.as_ptr().offset(co as isize * hw + p), cout * hw, hw);
                    let wv = (w.as_ptr().add(wo), i as isize, 1);
                    let gxv = (gx.as_mut_ptr().offset(ci as isize * hw + p), cin * hw, hw);
                    matmul((n, o, i), gxv, false, gv, wv, Geom::gemm_threads());
                    let gt = (gv.0, hw, cout * hw);
                    let xv = (x.as_ptr().offset(ci as isize * hw + p), cin * hw, hw);
                    let gwv = (gw.as_mut_ptr().add(wo), i as isize, 1);
                    matmul((o, n, i), gwv, true, gt, xv, Geom::gemm_threads());
                }
            }
        }
    }

    fn run<T: Real>(&self, x: &[T], w: &[T], grad: &[T]) -> Vec<T> {
        let geo = &self.geo;
        let nx = geo.n * geo.in_total() * geo.hw();
        let mut out = vec![T::ZERO; nx + geo.w_len()];
        let (gx, gw) = out.split_at_mut(nx);
        if geo.pixel_major() {
            self.run_pixels(x, w, grad, gx, gw);
            return out;
        }
        self.grad_x(w, grad, gx);
        let (batch_par, _) = geo.parallelism();
        if batch_par {
            // One partial weight gradient per worker chunk of images, summed at the end.
            let chunk = geo.n.div_ceil(rayon::current_num_threads());
            let partials: Vec<Vec<T>> = (0..geo.n)
                .into_par_iter()
                .step_by(chunk)
                .map(|start| {
                    let mut part = vec![T::ZERO; gw.len()];
                    self.grad_w_images(x, grad, start..(start + chunk).min(geo.n), &mut part);
                    part
                })
                .collect();
            for part in partials {
                gw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
            }
        } else {
            self.grad_w_images(x, grad, 0..geo.n, gw);
        }
        out
    }
}

impl CustomOp3 for PointwiseBwd {
    fn name(&self) -> &'static str {
        "pointwise_bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        dispatch!(name, s1, T => {
            let out = self.run::<T>(slice(name, s1, l1)?, slice(name, s2, l2)?, slice(name, s3, l3)?);
            let len = out.len();
            Ok((T::storage(out), Shape::from(len)))
        })
    }
}

/// Fast [`super::pointwise`].
pub(crate) fn pointwise(x: &Tensor, weights: &[Tensor]) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let mut geo = Geom { n, h, w, cin: vec![], cout: vec![] };
    for (gi, wt) in weights.iter().enumerate() {
        let (o, i, kh, kw) = wt.dims4()?;
        if (kh, kw) != (1, 1) {
            bail!("pointwise: group {gi} weight is {:?}, expected [out, in, 1, 1]", wt.dims())
        }
        geo.cin.push(i);
        geo.cout.push(o);
    }
    if weights.is_empty() || geo.in_total() != c {
        bail!("pointwise: weights take {} input channels but the input has {c}", geo.in_total())
    }
    let flat = weights.iter().map(|w| w.flatten_all()).collect::<Result<Vec<_>>>()?;
    let packed = if flat.len() == 1 { flat[0].contiguous()? } else { Tensor::cat(&flat, 0)? };
    check_dtypes("pointwise", &[x, &packed])?;
    x.contiguous()?.apply_op2(&packed, PointwiseOp { geo })
}

#[cfg(test)]
mod tests {
    use super::super::reference;
    use super::*;
    use candle_core::DType;
    use testkit::grad::{check_against, grad_check};
    use testkit::tensor::rand;

    /// `x: [n, sum cin, h, w]` and one `[cout_g, cin_g, 1, 1]` weight per group.
    fn inputs(n: usize, hw: (usize, usize), groups: &[(usize, usize)], dtype: DType) -> Result<Vec<Tensor>> {
        let cin = groups.iter().map(|g| g.0).sum();
        let mut ts = vec![rand(&[n, cin, hw.0, hw.1], 1, dtype)?];
        for (i, &(ci, co)) in groups.iter().enumerate() {
            ts.push(rand(&[co, ci, 1, 1], 20 + i as u64, dtype)?);
        }
        Ok(ts)
    }

    #[test]
    fn matches_reference_forward_and_backward() -> Result<()> {
        type Case<'a> = (usize, (usize, usize), &'a [(usize, usize)]);
        // The last two take the pixel-major path (`hw * 8 <= n`).
        let cases: [Case; 6] = [
            (3, (5, 7), &[(10, 16)]),
            (5, (4, 3), &[(5, 6), (5, 6)]),
            (2, (3, 3), &[(4, 3), (3, 3), (3, 2)]),
            (1, (9, 9), &[(6, 12), (6, 12)]),
            (8, (1, 1), &[(7, 5)]),
            (17, (2, 1), &[(5, 6), (3, 4)]),
        ];
        for (i, (n, hw, groups)) in cases.iter().enumerate() {
            let fast = |t: &[Tensor]| pointwise(&t[0], &t[1..]);
            let slow = |t: &[Tensor]| reference::pointwise(&t[0], &t[1..]);
            check_against(&fast, &slow, &inputs(*n, *hw, groups, DType::F32)?, &format!("case {i}"))?;
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let f = |t: &[Tensor]| pointwise(&t[0], &t[1..]);
        for (n, hw, groups) in
            [(3, (3, 4), &[(4, 3), (3, 2)][..]), (1, (3, 4), &[(5, 4)][..]), (16, (1, 2), &[(4, 3), (3, 2)][..])]
        {
            grad_check(&f, &inputs(n, hw, groups, DType::F64)?, 30, "pointwise")?;
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_shapes_and_dtype() -> Result<()> {
        let ts = inputs(2, (3, 3), &[(4, 3), (3, 2)], DType::F32)?;
        assert!(pointwise(&ts[0], &ts[1..2]).is_err());
        assert!(pointwise(&ts[0], &[rand(&[3, 7, 3, 3], 2, DType::F32)?]).is_err());
        let err =
            pointwise(&ts[0].to_dtype(DType::BF16)?, &[ts[1].to_dtype(DType::BF16)?, ts[2].to_dtype(DType::BF16)?]);
        assert!(err.unwrap_err().to_string().contains("unsupported dtype"));
        Ok(())
    }
}
