//! Squeeze-and-excitation pieces: global average pool (`channel_mean`) and the per-channel gate
//! (`channel_scale`), each a plane-parallel CustomOp whose backward is another such op.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::cpu::{check_dtypes, dispatch, filled, lane_sum, min_planes, simd, slice, write_map, Real};

/// `[n, c, h, w] -> [n, c]` mean over each plane.
struct ChannelMean {
    h: usize,
    w: usize,
}

impl CustomOp1 for ChannelMean {
    fn name(&self) -> &'static str {
        "channel_mean"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, _, _) = l.shape().dims4()?;
        let plane = self.h * self.w;
        dispatch!(self.name(), s, T => {
            let x = slice::<T>(self.name(), s, l)?;
            let inv = T::from_f64(1.0 / plane as f64);
            let mut y = vec![T::ZERO; n * c];
            y.par_iter_mut().with_min_len(min_planes(plane)).zip(x.par_chunks(plane)).for_each(|(y, xp)| {
                *y = simd(
                    #[inline(always)]
                    || lane_sum(xp, |v| v),
                ) * inv;
            });
            Ok((T::storage(y), Shape::from((n, c))))
        })
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let spread = ChannelSpread { h: self.h, w: self.w, scale: 1.0 / (self.h * self.w) as f64 };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&spread)?))
    }
}

/// `[n, c] -> [n, c, h, w]`: each value times `scale`, repeated over its plane.
struct ChannelSpread {
    h: usize,
    w: usize,
    scale: f64,
}

impl CustomOp1 for ChannelSpread {
    fn name(&self) -> &'static str {
        "channel_spread"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c) = l.shape().dims2()?;
        let plane = self.h * self.w;
        dispatch!(self.name(), s, T => {
            let g = slice::<T>(self.name(), s, l)?;
            let scale = T::from_f64(self.scale);
            let fill = |y: &mut [MaybeUninit<T>]| {
                y.par_chunks_mut(plane).with_min_len(min_planes(plane)).zip(g.par_iter()).for_each(|(yp, &gv)| {
                    yp.fill(MaybeUninit::new(gv * scale));
                })
            };
            // SAFETY: one plane per gradient value covers `y`, each filled.
            let y = unsafe { filled(n * c * plane, fill) };
            Ok((T::storage(y), Shape::from((n, c, self.h, self.w))))
        })
    }
}

/// Fast [`super::channel_mean`].
pub(crate) fn channel_mean(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    check_dtypes("channel_mean", &[x])?;
    x.contiguous()?.apply_op1(ChannelMean { h, w })
}

/// `x[n, c, :, :] * gate[n, c]` over `(x, gate)`.
struct ChannelScale;

impl ChannelScale {
    fn run<T: Real>(x: &[T], gate: &[T]) -> Vec<T> {
        let plane = x.len() / gate.len().max(1);
        let fill = |y: &mut [MaybeUninit<T>]| {
            let planes = y.par_chunks_mut(plane).with_min_len(min_planes(plane)).zip(x.par_chunks(plane));
            planes.zip(gate.par_iter()).for_each(|((yp, xp), &g)| {
                simd(
                    #[inline(always)]
                    || write_map(yp, xp, |x| x * g),
                )
            })
        };
        // SAFETY: `x` has one plane per gate value, so the planes cover `y`, each written in full.
        unsafe { filled(x.len(), fill) }
    }
}

impl CustomOp2 for ChannelScale {
    fn name(&self) -> &'static str {
        "channel_scale"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        dispatch!(name, s1, T => {
            let y = Self::run::<T>(slice(name, s1, l1)?, slice(name, s2, l2)?);
            Ok((T::storage(y), l1.shape().clone()))
        })
    }

    fn bwd(&self, x: &Tensor, gate: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gx = grad.apply_op2_no_bwd(gate, self)?;
        let ggate = grad.apply_op2_no_bwd(x, &PlaneDot)?;
        Ok((Some(gx), Some(ggate)))
    }
}

/// `[n, c, h, w] x [n, c, h, w] -> [n, c]`: the dot product of matching planes.
struct PlaneDot;

impl CustomOp2 for PlaneDot {
    fn name(&self) -> &'static str {
        "plane_dot"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (n, c, h, w) = l1.shape().dims4()?;
        let plane = h * w;
        dispatch!(name, s1, T => {
            let (a, b) = (slice::<T>(name, s1, l1)?, slice::<T>(name, s2, l2)?);
            let mut y = vec![T::ZERO; n * c];
            y.par_iter_mut().with_min_len(min_planes(plane)).enumerate().for_each(|(p, y)| {
                let r = p * plane..(p + 1) * plane;
                *y = a[r.clone()].iter().zip(&b[r]).fold(T::ZERO, |s, (&u, &v)| s + u * v);
            });
            Ok((T::storage(y), Shape::from((n, c))))
        })
    }
}

/// Fast [`super::channel_scale`].
pub(crate) fn channel_scale(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    if gate.dims() != [n, c] {
        bail!("channel_scale: gate has shape {:?}, expected [{n}, {c}]", gate.dims())
    }
    check_dtypes("channel_scale", &[x, gate])?;
    x.contiguous()?.apply_op2(&gate.contiguous()?, ChannelScale)
}

#[cfg(test)]
mod tests {
    use super::super::reference;
    use super::*;
    use candle_core::DType;
    use testkit::grad::{check_against, grad_check};
    use testkit::tensor::rand;

    #[test]
    fn matches_reference() -> Result<()> {
        for shape in [[2, 5, 3, 3], [3, 7, 5, 4], [1, 4, 1, 1]] {
            let x = rand(&shape, 1, DType::F32)?;
            let gate = rand(&shape[..2], 2, DType::F32)?;
            check_against(
                &|t| channel_mean(&t[0]),
                &|t| reference::channel_mean(&t[0]),
                std::slice::from_ref(&x),
                "channel_mean",
            )?;
            let fast = |t: &[Tensor]| channel_scale(&t[0], &t[1]);
            let slow = |t: &[Tensor]| reference::channel_scale(&t[0], &t[1]);
            check_against(&fast, &slow, &[x, gate], "channel_scale")?;
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let x = rand(&[2, 3, 3, 4], 1, DType::F64)?;
        let gate = rand(&[2, 3], 2, DType::F64)?;
        grad_check(&|t| channel_mean(&t[0]), std::slice::from_ref(&x), 30, "channel_mean")?;
        grad_check(&|t| channel_scale(&t[0], &t[1]), &[x, gate], 30, "channel_scale")
    }

    #[test]
    fn rejects_bad_gate() -> Result<()> {
        let x = rand(&[2, 3, 3, 4], 1, DType::F32)?;
        assert!(channel_scale(&x, &rand(&[2, 4], 2, DType::F32)?).is_err());
        assert!(channel_scale(&x, &rand(&[2, 3], 2, DType::F64)?).is_err());
        Ok(())
    }
}
