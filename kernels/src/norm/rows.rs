//! Batch norm over small planes (the late stages of a small input): the batch as `n` rows of
//! `c * plane` values, with per-channel coefficients spread to every position of a row. The
//! per-plane loops of the parent module run 1 to 16 elements at a time there; here every loop
//! runs the length of a row, and the channel sums are per-position sums over the batch, added
//! up per channel at the end.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::super::cpu::{act_grad, activate, simd, Real};
use super::{Act, Dims};

/// Whether batch norm takes the row path.
pub(super) fn pays(d: Dims) -> bool {
    d.plane <= 16
}

/// Per-channel values repeated over each channel's positions: one row's worth.
pub(super) fn spread<T: Copy>(d: Dims, per_channel: &[T]) -> Vec<T> {
    per_channel.iter().flat_map(|&v| std::iter::repeat_n(v, d.plane)).collect()
}

/// Rows per task when reducing over the batch: one block of rows per thread.
fn block(d: Dims) -> usize {
    d.c * d.plane * d.n.div_ceil(rayon::current_num_threads())
}

/// Per-position partial sums from each block, totalled per channel in f64.
fn channel_totals<T: Real>(d: Dims, parts: &[(Vec<T>, Vec<T>)]) -> Vec<(f64, f64)> {
    (0..d.c)
        .map(|ch| {
            let r = ch * d.plane..(ch + 1) * d.plane;
            parts.iter().fold((0.0, 0.0), |(t1, t2), (s1, s2)| {
                let sum = |s: &[T]| s.iter().map(|v| v.to_f64()).sum::<f64>();
                (t1 + sum(&s1[r.clone()]), t2 + sum(&s2[r.clone()]))
            })
        })
        .collect()
}

/// Per channel, `(sum (x - k), sum (x - k)^2)` with `k` the channel's value in `shift`.
pub(super) fn shifted_sums<T: Real>(d: Dims, x: &[T], shift: &[T]) -> Vec<(f64, f64)> {
    let (row, k) = (d.c * d.plane, spread(d, shift));
    let parts: Vec<(Vec<T>, Vec<T>)> = x
        .par_chunks(block(d))
        .map(|rows| {
            let (mut s1, mut s2) = (vec![T::ZERO; row], vec![T::ZERO; row]);
            simd(
                #[inline(always)]
                || {
                    for xr in rows.chunks_exact(row) {
                        for (((a1, a2), &xv), &kv) in s1.iter_mut().zip(&mut s2).zip(xr).zip(&k) {
                            let v = xv - kv;
                            *a1 += v;
                            *a2 += v * v;
                        }
                    }
                },
            );
            (s1, s2)
        })
        .collect();
    channel_totals(d, &parts)
}

/// `y = act(a[c] * x + b[c])`.
pub(super) fn affine_act<T: Real>(d: Dims, x: &[T], a: &[T], b: &[T], act: Act, y: &mut [MaybeUninit<T>]) {
    let row = d.c * d.plane;
    let (a, b) = (spread(d, a), spread(d, b));
    y.par_chunks_mut(row).zip(x.par_chunks(row)).with_min_len(4096 / row + 1).for_each(|(yr, xr)| {
        simd(
            #[inline(always)]
            || {
                let ab = a.iter().zip(&b);
                // One loop per activation, so that each vectorises.
                match act {
                    Act::None => map3(yr, xr, ab, |x, a, b| a * x + b),
                    Act::Relu => map3(yr, xr, ab, |x, a, b| (a * x + b).relu()),
                    Act::Swish => map3(yr, xr, ab, |x, a, b| activate(a * x + b, Act::Swish)),
                }
            },
        )
    });
}

#[inline(always)]
fn map3<'a, T: Real>(
    y: &mut [MaybeUninit<T>],
    x: &[T],
    ab: impl Iterator<Item = (&'a T, &'a T)>,
    f: impl Fn(T, T, T) -> T,
) {
    for ((o, &xv), (&a, &b)) in y.iter_mut().zip(x).zip(ab) {
        o.write(f(xv, a, b));
    }
}

/// Backward pass 1: `dz = g * act'(a x + b)` into `dz`, and per channel `(sum dz, sum dz * x)`.
pub(super) fn dz_and_sums<T: Real>(
    d: Dims,
    x: &[T],
    g: &[T],
    dz: &mut [T],
    a: &[T],
    b: &[T],
    act: Act,
) -> Vec<(f64, f64)> {
    let (row, a, b) = (d.c * d.plane, spread(d, a), spread(d, b));
    let blocks = dz.par_chunks_mut(block(d)).zip(x.par_chunks(block(d))).zip(g.par_chunks(block(d)));
    let parts: Vec<(Vec<T>, Vec<T>)> = blocks
        .map(|((dzb, xb), gb)| {
            let (mut s1, mut s2) = (vec![T::ZERO; row], vec![T::ZERO; row]);
            let rows = dzb.chunks_exact_mut(row).zip(xb.chunks_exact(row)).zip(gb.chunks_exact(row));
            for ((dzr, xr), gr) in rows {
                simd(
                    #[inline(always)]
                    || match act {
                        Act::None => dz_row(dzr, xr, gr, &a, &b, &mut s1, &mut s2, |_| T::ONE),
                        Act::Relu => dz_row(dzr, xr, gr, &a, &b, &mut s1, &mut s2, |z| act_grad(z, Act::Relu)),
                        Act::Swish => dz_row(dzr, xr, gr, &a, &b, &mut s1, &mut s2, |z| act_grad(z, Act::Swish)),
                    },
                );
            }
            (s1, s2)
        })
        .collect();
    channel_totals(d, &parts)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dz_row<T: Real>(
    dz: &mut [T],
    x: &[T],
    g: &[T],
    a: &[T],
    b: &[T],
    s1: &mut [T],
    s2: &mut [T],
    dact: impl Fn(T) -> T,
) {
    let coeffs = a.iter().zip(b);
    let sums = s1.iter_mut().zip(s2.iter_mut());
    for ((((o, &xv), &gv), (&av, &bv)), (t1, t2)) in dz.iter_mut().zip(x).zip(g).zip(coeffs).zip(sums) {
        let v = gv * dact(av * xv + bv);
        *o = v;
        *t1 += v;
        *t2 += v * xv;
    }
}

/// Backward pass 2: `gx = a * dz + k1 * x + k0` in place of `dz`, coefficients per channel.
pub(super) fn finish<T: Real>(d: Dims, x: &[T], gx: &mut [T], a: &[T], k1: &[T], k0: &[T]) {
    let row = d.c * d.plane;
    let (a, k1, k0) = (spread(d, a), spread(d, k1), spread(d, k0));
    gx.par_chunks_mut(row).zip(x.par_chunks(row)).with_min_len(4096 / row + 1).for_each(|(gr, xr)| {
        simd(
            #[inline(always)]
            || {
                let coeffs = a.iter().zip(&k1).zip(&k0);
                for ((o, &xv), ((&av, &k1v), &k0v)) in gr.iter_mut().zip(xr).zip(coeffs) {
                    *o = av * *o + k1v * xv + k0v;
                }
            },
        )
    });
}
