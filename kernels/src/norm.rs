//! Batch norm (training and folded eval form) fused with its activation, and swish. Both BN
//! forms reduce to a per-channel affine `z = a * x + b` followed by the activation; they differ
//! only in where `a` and `b` come from and in the backward through the batch statistics.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{
    act_grad, activate, check_dtypes, dispatch, filled, min_planes, simd, slice, unpack, write_map, Real, LANES,
};
use super::disjoint::DisjointSlice;
use super::{Act, BatchStats};

mod rows;

/// `[n, c, plane]` view of an NCHW tensor.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    plane: usize,
}

impl Dims {
    fn of(x: &Tensor) -> Result<Self> {
        let (n, c, h, w) = x.dims4()?;
        Ok(Self { n, c, plane: h * w })
    }
    fn count(&self) -> usize {
        self.n * self.plane
    }
}

/// `y = act(a[c] * x + b[c])`, planes in parallel.
fn affine_act<T: Real>(d: Dims, x: &[T], a: &[T], b: &[T], act: Act) -> Vec<T> {
    if rows::pays(d) {
        // SAFETY: the rows cover `y`, and each is written in full.
        return unsafe { filled(x.len(), |y| rows::affine_act(d, x, a, b, act, y)) };
    }
    let fill = |y: &mut [MaybeUninit<T>]| {
        y.par_chunks_mut(d.plane).with_min_len(min_planes(d.plane)).enumerate().for_each(|(p, yp)| {
            let (a, b) = (a[p % d.c], b[p % d.c]);
            let xp = &x[p * d.plane..(p + 1) * d.plane];
            simd(
                #[inline(always)]
                || match act {
                    Act::None => write_map(yp, xp, |x| a * x + b),
                    Act::Relu => write_map(yp, xp, |x| (a * x + b).relu()),
                    Act::Swish => write_map(yp, xp, |x| activate(a * x + b, Act::Swish)),
                },
            )
        })
    };
    // SAFETY: the planes cover `y`, and each is written in full.
    unsafe { filled(x.len(), fill) }
}

/// Per channel, `f` folded over every plane of that channel (in f64 for a stable batch sum).
fn per_channel<R: Send>(d: Dims, f: impl Fn(usize, usize) -> R + Sync, add: impl Fn(R, R) -> R + Sync) -> Vec<R> {
    (0..d.c).into_par_iter().map(|ch| (0..d.n).map(|n| f(ch, n * d.c + ch)).reduce(&add).unwrap()).collect()
}

/// Per-channel batch mean and biased variance in one pass: sums of `x - k` and `(x - k)^2` with
/// `k` the channel's first value. Shifting by a value from the data keeps the cancellation in
/// `E[(x-k)^2] - E[x-k]^2` small (it is catastrophic unshifted when the mean dwarfs the spread).
fn batch_stats<T: Real>(d: Dims, x: &[T]) -> (Vec<f64>, Vec<f64>) {
    let plane = |p: usize| &x[p * d.plane..(p + 1) * d.plane];
    let sums = if rows::pays(d) {
        rows::shifted_sums(d, x, &(0..d.c).map(|ch| x[ch * d.plane]).collect::<Vec<_>>())
    } else {
        per_channel::<(f64, f64)>(
            d,
            |ch, p| {
                let k = x[ch * d.plane];
                let (s1, s2) = simd(
                    #[inline(always)]
                    || shifted_sums(plane(p), k),
                );
                (s1.to_f64(), s2.to_f64())
            },
            |l, r| (l.0 + r.0, l.1 + r.1),
        )
    };
    let cnt = d.count() as f64;
    let moments = sums.iter().enumerate().map(|(ch, &(s1, s2))| {
        let m1 = s1 / cnt;
        (x[ch * d.plane].to_f64() + m1, (s2 / cnt - m1 * m1).max(0.0))
    });
    moments.unzip()
}

/// `(sum (x - k), sum (x - k)^2)` in [`LANES`] partial sums. Call inside [`simd`].
#[inline(always)]
fn shifted_sums<T: Real>(xs: &[T], k: T) -> (T, T) {
    let (mut s1, mut s2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            let v = c[i] - k;
            s1[i] += v;
            s2[i] += v * v;
        }
    }
    let (mut t1, mut t2) = (T::ZERO, T::ZERO);
    for &x in chunks.remainder() {
        let v = x - k;
        t1 += v;
        t2 += v * v;
    }
    (s1.iter().fold(t1, |s, &v| s + v), s2.iter().fold(t2, |s, &v| s + v))
}

/// `dz = g * act'(a x + b)` written to `dz`, with `(sum dz, sum dz * x)`. Call inside [`simd`].
#[inline(always)]
fn dz_and_sums<T: Real>(x: &[T], g: &[T], dz: &mut [T], a: T, b: T, act: Act) -> (T, T) {
    // One loop per activation: a match inside the loop can keep it from vectorising.
    match act {
        Act::None => dz_and_sums_with(x, g, dz, a, b, |_| T::ONE),
        Act::Relu => dz_and_sums_with(x, g, dz, a, b, |z| act_grad(z, Act::Relu)),
        Act::Swish => dz_and_sums_with(x, g, dz, a, b, |z| act_grad(z, Act::Swish)),
    }
}

#[inline(always)]
fn dz_and_sums_with<T: Real>(x: &[T], g: &[T], dz: &mut [T], a: T, b: T, dact: impl Fn(T) -> T) -> (T, T) {
    let (mut s1, mut s2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let whole = x.len() / LANES * LANES;
    let lanes = x[..whole].chunks_exact(LANES).zip(g[..whole].chunks_exact(LANES));
    for ((xc, gc), dc) in lanes.zip(dz[..whole].chunks_exact_mut(LANES)) {
        for i in 0..LANES {
            let v = gc[i] * dact(a * xc[i] + b);
            dc[i] = v;
            s1[i] += v;
            s2[i] += v * xc[i];
        }
    }
    let (mut t1, mut t2) = (T::ZERO, T::ZERO);
    for ((&xv, &gv), o) in x[whole..].iter().zip(&g[whole..]).zip(&mut dz[whole..]) {
        *o = gv * dact(a * xv + b);
        t1 += *o;
        t2 += *o * xv;
    }
    (s1.iter().fold(t1, |s, &v| s + v), s2.iter().fold(t2, |s, &v| s + v))
}

/// What the backward needs from the forward: `z = a * x + b` and, for batch norm, the statistics.
#[derive(Clone, Debug)]
struct AffineBwd {
    d: Dims,
    act: Act,
    a: Vec<f64>,
    b: Vec<f64>,
    /// Batch norm: per-channel (mean, 1 / std). `None`: plain affine with constant a, b.
    bn: Option<(Vec<f64>, Vec<f64>)>,
}

impl AffineBwd {
    /// Over `(x, grad)`, gives `[grad x | grad a-or-gamma | grad b-or-beta]` flat. The first pass
    /// leaves `dz` (the gradient before the activation) in the `grad x` planes, so the
    /// activation's derivative is evaluated once per element.
    fn run<T: Real>(&self, x: &[T], g: &[T]) -> Vec<T> {
        let d = self.d;
        let conv = |v: &[f64]| v.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
        let (a, b) = (conv(&self.a), conv(&self.b));
        let plane = |p: usize| &x[p * d.plane..(p + 1) * d.plane];
        let nx = x.len();
        let mut out = vec![T::ZERO; nx + 2 * d.c];
        let (gx, gp) = out.split_at_mut(nx);
        // s1 = sum dz, s2 = sum dz * x.
        let sums = if rows::pays(d) {
            rows::dz_and_sums(d, x, g, gx, &a, &b, self.act)
        } else {
            let dz = DisjointSlice::new(gx);
            per_channel::<(f64, f64)>(
                d,
                |ch, p| {
                    // SAFETY: plane p = n * c + ch belongs to channel ch alone, and per_channel
                    // runs each channel's planes in one task, one after another.
                    let dzp = unsafe { dz.range_mut(p * d.plane..(p + 1) * d.plane) };
                    let gp = &g[p * d.plane..(p + 1) * d.plane];
                    let (s1, s2) = simd(
                        #[inline(always)]
                        || dz_and_sums(plane(p), gp, dzp, a[ch], b[ch], self.act),
                    );
                    (s1.to_f64(), s2.to_f64())
                },
                |l, r| (l.0 + r.0, l.1 + r.1),
            )
        };
        // dx = a * dz + k1 * x + k0; k1 = k0 = 0 without batch statistics.
        let mut k = vec![(T::ZERO, T::ZERO); d.c];
        for ch in 0..d.c {
            let (s1, s2) = sums[ch];
            match &self.bn {
                None => (gp[ch], gp[d.c + ch]) = (T::from_f64(s2), T::from_f64(s1)),
                Some((mean, istd)) => {
                    let (m, is, a, cnt) = (mean[ch], istd[ch], self.a[ch], d.count() as f64);
                    let dgamma = is * (s2 - m * s1);
                    (gp[ch], gp[d.c + ch]) = (T::from_f64(dgamma), T::from_f64(s1));
                    let k1 = -a * is * dgamma / cnt;
                    k[ch] = (T::from_f64(k1), T::from_f64(-a * s1 / cnt - k1 * m));
                }
            }
        }
        if rows::pays(d) {
            let (k1, k0): (Vec<T>, Vec<T>) = k.into_iter().unzip();
            rows::finish(d, x, gx, &a, &k1, &k0);
            return out;
        }
        gx.par_chunks_mut(d.plane).with_min_len(min_planes(d.plane)).enumerate().for_each(|(p, gxp)| {
            let ch = p % d.c;
            let (a, (k1, k0)) = (a[ch], k[ch]);
            simd(
                #[inline(always)]
                || {
                    for (o, &xv) in gxp.iter_mut().zip(plane(p)) {
                        *o = a * *o + k1 * xv + k0;
                    }
                },
            )
        });
        out
    }

    fn apply(&self, x: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let packed = x.apply_op2_no_bwd(&grad.contiguous()?, self)?;
        let parts = unpack(&packed, &[x.dims(), &[self.d.c], &[self.d.c]])?;
        Ok((parts[0].clone(), parts[1].clone(), parts[2].clone()))
    }
}

impl CustomOp2 for AffineBwd {
    fn name(&self) -> &'static str {
        "channel_affine_bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        dispatch!(name, s1, T => {
            let out = self.run::<T>(slice(name, s1, l1)?, slice(name, s2, l2)?);
            let len = out.len();
            Ok((T::storage(out), Shape::from(len)))
        })
    }
}

fn to_f64_vec(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// Per-channel (mean, biased variance), written by the forward.
type SharedStats = Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>;

/// Training batch norm over `(x, gamma, beta)`. The forward leaves its statistics in `stats`:
/// the caller reads them for the running averages and the backward reuses them.
struct BatchNormOp {
    d: Dims,
    eps: f64,
    act: Act,
    stats: SharedStats,
}

impl BatchNormOp {
    fn fwd<T: Real>(&self, x: &[T], gamma: &[T], beta: &[T]) -> Vec<T> {
        let (mean, var) = batch_stats(self.d, x);
        let (mut a, mut b) = (vec![T::ZERO; self.d.c], vec![T::ZERO; self.d.c]);
        for ch in 0..self.d.c {
            let s = gamma[ch].to_f64() / (var[ch] + self.eps).sqrt();
            (a[ch], b[ch]) = (T::from_f64(s), T::from_f64(beta[ch].to_f64() - mean[ch] * s));
        }
        *self.stats.lock().unwrap() = Some((mean, var));
        affine_act(self.d, x, &a, &b, self.act)
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch_norm_train"
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
            let y = self.fwd::<T>(slice(name, s1, l1)?, slice(name, s2, l2)?, slice(name, s3, l3)?);
            Ok((T::storage(y), l1.shape().clone()))
        })
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some((mean, var)) = self.stats.lock().unwrap().clone() else {
            bail!("batch_norm_train: backward before forward")
        };
        let (gamma, beta) = (to_f64_vec(gamma)?, to_f64_vec(beta)?);
        let istd: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let a: Vec<f64> = gamma.iter().zip(&istd).map(|(g, s)| g * s).collect();
        let b = beta.iter().zip(&a).zip(&mean).map(|((be, a), m)| be - a * m).collect();
        let bwd = AffineBwd { d: self.d, act: self.act, a, b, bn: Some((mean, istd)) };
        let (gx, gg, gb) = bwd.apply(x, grad)?;
        Ok((Some(gx), Some(gg), Some(gb)))
    }
}

fn check_channel_params(op: &str, x: &Tensor, params: [&Tensor; 2]) -> Result<Dims> {
    let d = Dims::of(x)?;
    for p in params {
        if p.dims() != [d.c] {
            bail!("{op}: per-channel parameter has shape {:?}, expected [{}]", p.dims(), d.c)
        }
    }
    check_dtypes(op, &[x, params[0], params[1]])?;
    Ok(d)
}

/// Fast [`super::batch_norm_train`].
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Act,
) -> Result<(Tensor, BatchStats)> {
    let d = check_channel_params("batch_norm_train", x, [gamma, beta])?;
    let stats = Arc::new(Mutex::new(None));
    let op = BatchNormOp { d, eps, act, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let Some((mean, var)) = stats.lock().unwrap().clone() else { bail!("batch_norm_train: no statistics") };
    let unbias = d.count() as f64 / (d.count() as f64 - 1.0).max(1.0);
    let var_unbiased: Vec<f64> = var.iter().map(|v| v * unbias).collect();
    let dev = x.device();
    let stats = BatchStats {
        mean: Tensor::from_vec(mean, d.c, dev)?.to_dtype(x.dtype())?,
        var_unbiased: Tensor::from_vec(var_unbiased, d.c, dev)?.to_dtype(x.dtype())?,
    };
    Ok((y, stats))
}

/// `act(x * scale[c] + shift[c])` over `(x, scale, shift)`.
struct ChannelAffineOp {
    d: Dims,
    act: Act,
}

impl CustomOp3 for ChannelAffineOp {
    fn name(&self) -> &'static str {
        "channel_affine"
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
            let (x, a, b) = (slice::<T>(name, s1, l1)?, slice(name, s2, l2)?, slice(name, s3, l3)?);
            Ok((T::storage(affine_act(self.d, x, a, b, self.act)), l1.shape().clone()))
        })
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let bwd = AffineBwd { d: self.d, act: self.act, a: to_f64_vec(scale)?, b: to_f64_vec(shift)?, bn: None };
        let (gx, ga, gb) = bwd.apply(x, grad)?;
        Ok((Some(gx), Some(ga), Some(gb)))
    }
}

/// Fast [`super::channel_affine`].
pub(crate) fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor, act: Act) -> Result<Tensor> {
    let d = check_channel_params("channel_affine", x, [scale, shift])?;
    let op = ChannelAffineOp { d, act };
    x.contiguous()?.apply_op3(&scale.contiguous()?, &shift.contiguous()?, op)
}

/// Elementwise swish; chunks in parallel.
struct SwishOp;

const CHUNK: usize = 16 * 1024;

impl CustomOp1 for SwishOp {
    fn name(&self) -> &'static str {
        "swish"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(self.name(), s, T => {
            let x = slice::<T>(self.name(), s, l)?;
            let fill = |y: &mut [MaybeUninit<T>]| {
                y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
                    simd(
                        #[inline(always)]
                        || write_map(y, x, |x| activate(x, Act::Swish)),
                    );
                })
            };
            // SAFETY: the chunks cover `y` and each is written in full.
            let y = unsafe { filled(x.len(), fill) };
            Ok((T::storage(y), l.shape().clone()))
        })
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &SwishBwd)?))
    }
}

/// `grad * swish'(x)` over `(x, grad)`.
struct SwishBwd;

impl CustomOp2 for SwishBwd {
    fn name(&self) -> &'static str {
        "swish_bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        dispatch!(name, s1, T => {
            let (x, g) = (slice::<T>(name, s1, l1)?, slice::<T>(name, s2, l2)?);
            let mut gx = vec![T::ZERO; x.len()];
            gx.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK))).for_each(|(o, (x, g))| {
                simd(
                    #[inline(always)]
                    || {
                        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                            *o = g * act_grad(x, Act::Swish);
                        }
                    },
                )
            });
            Ok((T::storage(gx), l1.shape().clone()))
        })
    }
}

/// Fast [`super::swish`].
pub(crate) fn swish(x: &Tensor) -> Result<Tensor> {
    check_dtypes("swish", &[x])?;
    x.contiguous()?.apply_op1(SwishOp)
}

#[cfg(test)]
mod tests {
    use super::super::reference;
    use super::*;
    use testkit::float::assert_close;
    use testkit::grad::{check_against, grad_check};
    use testkit::tensor::rand;

    const ACTS: [Act; 3] = [Act::None, Act::Relu, Act::Swish];

    fn inputs(shape: &[usize], dtype: DType) -> Result<Vec<Tensor>> {
        let c = shape[1];
        // gamma around 1 so the normalised values spread over both sides of the ReLU kink.
        let gamma = rand(&[c], 2, dtype)?.affine(0.5, 1.0)?;
        Ok(vec![rand(shape, 1, dtype)?.affine(3.0, 0.5)?, gamma, rand(&[c], 3, dtype)?])
    }

    #[test]
    fn batch_norm_matches_reference() -> Result<()> {
        for (shape, act) in [[4, 5, 3, 3], [2, 7, 5, 4], [3, 3, 1, 1], [2, 3, 9, 7], [9, 6, 4, 4], [17, 3, 1, 1]]
            .iter()
            .flat_map(|s| ACTS.map(|a| (s, a)))
        {
            let what = format!("batch_norm {shape:?} {act:?}");
            let fast = |t: &[Tensor]| Ok(batch_norm_train(&t[0], &t[1], &t[2], 1e-3, act)?.0);
            let slow = |t: &[Tensor]| Ok(reference::batch_norm_train(&t[0], &t[1], &t[2], 1e-3, act)?.0);
            let ts = inputs(shape, DType::F32)?;
            check_against(&fast, &slow, &ts, &what)?;
            let (_, stats) = batch_norm_train(&ts[0], &ts[1], &ts[2], 1e-3, act)?;
            let (_, want) = reference::batch_norm_train(&ts[0], &ts[1], &ts[2], 1e-3, act)?;
            assert_close(&stats.mean, &want.mean, 1e-5, &format!("{what}: mean"))?;
            assert_close(&stats.var_unbiased, &want.var_unbiased, 1e-5, &format!("{what}: var"))?;
            assert!(!stats.mean.is_variable() && stats.mean.dtype() == DType::F32);
        }
        Ok(())
    }

    #[test]
    fn channel_affine_and_swish_match_reference() -> Result<()> {
        for act in ACTS {
            let fast = |t: &[Tensor]| channel_affine(&t[0], &t[1], &t[2], act);
            let slow = |t: &[Tensor]| reference::channel_affine(&t[0], &t[1], &t[2], act);
            for shape in [[3, 6, 5, 3], [2, 3, 9, 7]] {
                check_against(
                    &fast,
                    &slow,
                    &inputs(&shape, DType::F32)?,
                    &format!("channel_affine {shape:?} {act:?}"),
                )?;
            }
        }
        let x = (rand(&[3, 5, 7, 2], 4, DType::F32)? * 6.0)?;
        check_against(&|t| swish(&t[0]), &|t| reference::swish(&t[0]), std::slice::from_ref(&x), "swish")?;
        check_against(&|t| swish(&t[0]), &|t| reference::swish(&t[0]), &[x.flatten_from(1)?], "swish 2d")
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        // Planes of 4 and 6 (the row path, `rows::pays`) and 35 (two full lanes and a tail).
        for (shape, act) in [[3, 4, 3, 2], [5, 3, 2, 2], [2, 3, 5, 7]].iter().flat_map(|s| ACTS.map(|a| (s, a))) {
            let ts = inputs(shape, DType::F64)?;
            let bn = |t: &[Tensor]| Ok(batch_norm_train(&t[0], &t[1], &t[2], 1e-3, act)?.0);
            grad_check(&bn, &ts, 30, &format!("batch_norm {shape:?} {act:?}"))?;
            let affine = |t: &[Tensor]| channel_affine(&t[0], &t[1], &t[2], act);
            grad_check(&affine, &ts, 30, &format!("channel_affine {shape:?} {act:?}"))?;
        }
        grad_check(&|t| swish(&t[0]), &[(rand(&[2, 3, 4, 4], 5, DType::F64)? * 4.0)?], 40, "swish")
    }

    #[test]
    fn rejects_bad_parameters_and_dtype() -> Result<()> {
        let ts = inputs(&[2, 4, 3, 3], DType::F32)?;
        assert!(batch_norm_train(&ts[0], &ts[1].narrow(0, 0, 3)?, &ts[2], 1e-3, Act::None).is_err());
        assert!(channel_affine(&ts[0], &ts[1], &ts[2].to_dtype(DType::F64)?, Act::None).is_err());
        let err = swish(&ts[0].to_dtype(DType::F16)?).unwrap_err().to_string();
        assert!(err.contains("unsupported dtype"), "{err}");
        Ok(())
    }
}
