//! MixConv over small planes and a large batch, one channel at a time with the images as vector
//! lanes: the channel's planes are gathered into `[pixel][image]`, so each tap that hits the
//! image is one multiply-add over the whole batch. Per-plane loops on a 4x4 or 2x2 plane spend
//! their time on loop set-up and on taps that miss; here neither scales with the batch.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::super::cpu::{simd, Real, LANES};
use super::super::disjoint::DisjointSlice;
use super::{Geom, Group};

/// Whether the op takes this path: enough images to fill the lanes, output planes small enough
/// that per-plane work is mostly overhead. At batch 64 (`nas bench ops`, 2 threads) it is
/// 3-7x faster on 8x8 and smaller outputs and 1.5-2x on 16x16 at stride 2, but slower than the
/// padded path on 16x16 at stride 1.
pub(super) fn pays(geo: &Geom) -> bool {
    geo.n >= 16 && geo.ho * geo.wo <= 64
}

/// Channel `ch`'s planes of `src` (`[n, c, hw]`) as `[hw][n]` in `buf`.
fn gather<T: Real>(src: &[T], n: usize, c: usize, hw: usize, ch: usize, buf: &mut Vec<T>) {
    buf.clear();
    buf.resize(hw * n, T::ZERO);
    for img in 0..n {
        let plane = &src[(img * c + ch) * hw..][..hw];
        for (p, &v) in plane.iter().enumerate() {
            buf[p * n + img] = v;
        }
    }
}

/// `buf` (`[hw][n]`) back into channel `ch`'s planes of `dst` (`[n, c, hw]`), each value
/// stored by `put` (`dst` may be uninitialised). Each task owns one channel's planes, which
/// interleave with the others' across the batch.
///
/// # Safety
/// No other task may touch channel `ch`.
unsafe fn scatter<T: Real, D>(
    buf: &[T],
    (n, c, hw): (usize, usize, usize),
    ch: usize,
    dst: &DisjointSlice<D>,
    put: impl Fn(&mut D, T),
) {
    for img in 0..n {
        let base = (img * c + ch) * hw;
        let plane = dst.range_mut(base..base + hw);
        for (p, d) in plane.iter_mut().enumerate() {
            put(d, buf[p * n + img]);
        }
    }
}

/// Calls `f(tap, output pixel, input pixel)` for every tap that hits the image, in the direct
/// loops' order (output row, kernel row, kernel column, output column), so sums match theirs.
#[inline(always)]
fn each_hit(geo: &Geom, g: &Group, mut f: impl FnMut(usize, usize, usize)) {
    for oy in 0..geo.ho {
        for ky in 0..g.k {
            let Some(iy) = geo.in_row(g, oy, ky) else { continue };
            for (kx, &(lo, hi, ix)) in g.cols.iter().enumerate() {
                for ox in lo..hi {
                    f(ky * g.k + kx, oy * geo.wo + ox, iy * geo.w + ix + (ox - lo) * geo.stride);
                }
            }
        }
    }
}

/// Forward of channel `ch` from its gathered input `xb` into `ob` (`[ho * wo][n]`).
#[inline(always)]
fn fwd_channel<T: Real>(geo: &Geom, g: &Group, wk: &[T], xb: &[T], ob: &mut Vec<T>) {
    let n = geo.n;
    ob.clear();
    ob.resize(geo.ho * geo.wo * n, T::ZERO);
    each_hit(geo, g, |t, o, i| {
        let wv = wk[t];
        for (a, &v) in ob[o * n..(o + 1) * n].iter_mut().zip(&xb[i * n..(i + 1) * n]) {
            *a += wv * v;
        }
    });
}

/// Forward of the whole op into `out` (`[n, c, ho, wo]`, uninitialised).
pub(super) fn fwd<T: Real>(geo: &Geom, x: &[T], w: &[T], out: &mut [MaybeUninit<T>]) {
    let (hw, hwo) = (geo.h * geo.w, geo.ho * geo.wo);
    let dst = DisjointSlice::new(out);
    (0..geo.c).into_par_iter().for_each_with((Vec::new(), Vec::new()), |(xb, ob), ch| {
        let (g, wk) = geo.kernel(ch, w);
        gather(x, geo.n, geo.c, hw, ch, xb);
        simd(
            #[inline(always)]
            || fwd_channel(geo, g, wk, xb, ob),
        );
        // SAFETY: this task alone writes channel `ch`.
        unsafe { scatter(ob, (geo.n, geo.c, hwo), ch, &dst, |d, v| *d = MaybeUninit::new(v)) };
    });
}

/// Both gradients of channel `ch` from its gathered input `xb` and output gradient `gb`:
/// `gxb` (`[h * w][n]`) and the `k * k` weight gradient `gw` (added to).
#[inline(always)]
fn bwd_channel<T: Real>(geo: &Geom, g: &Group, wk: &[T], xb: &[T], gb: &[T], gxb: &mut Vec<T>, gw: &mut [T]) {
    let n = geo.n;
    gxb.clear();
    gxb.resize(geo.h * geo.w * n, T::ZERO);
    each_hit(geo, g, |t, o, i| {
        let (wv, go) = (wk[t], &gb[o * n..(o + 1) * n]);
        for (a, &v) in gxb[i * n..(i + 1) * n].iter_mut().zip(go) {
            *a += wv * v;
        }
        gw[t] += dot(go, &xb[i * n..(i + 1) * n]);
    });
}

/// `sum a[i] * b[i]` in [`LANES`] partial sums.
#[inline(always)]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let (mut ac, mut bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ac).zip(&mut bc) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail = ac.remainder().iter().zip(bc.remainder()).fold(T::ZERO, |s, (&x, &y)| s + x * y);
    acc.iter().fold(tail, |s, &v| s + v)
}

/// Backward of the whole op: `gx` (`[n, c, h, w]`, every element written) and `gw` (packed
/// like the weights, zeroed).
pub(super) fn bwd<T: Real>(geo: &Geom, x: &[T], w: &[T], grad: &[T], gx: &mut [T], gw: &mut [T]) {
    let (hw, hwo) = (geo.h * geo.w, geo.ho * geo.wo);
    let dst = DisjointSlice::new(gx);
    let scratch = (Vec::new(), Vec::new(), Vec::new());
    geo.per_channel(gw).into_par_iter().enumerate().for_each_with(scratch, |(xb, gb, gxb), (ch, gwc)| {
        let (g, wk) = geo.kernel(ch, w);
        gather(x, geo.n, geo.c, hw, ch, xb);
        gather(grad, geo.n, geo.c, hwo, ch, gb);
        simd(
            #[inline(always)]
            || bwd_channel(geo, g, wk, xb, gb, gxb, gwc),
        );
        // SAFETY: this task alone writes channel `ch`.
        unsafe { scatter(gxb, (geo.n, geo.c, hw), ch, &dst, |d, v| *d = v) };
    });
}
