//! `act(x + bias)`, the epilogue of every conv on the eval path (`evaluator::model::EvalNet`): in
//! place on a row, or row by row out of a wider buffer (the MixConv's accumulator). Swish is most of its cost: at batch 1 it was ~17% of MixNet-L's
//! forward, as the `exp` polynomial in separate multiplies and adds and a divide. With AVX2 + FMA
//! it runs eight lanes at a time with fused multiply-adds and a reciprocal estimate refined by
//! one Newton step instead of the divide (within 1e-6 relative of f64, as the test checks);
//! elsewhere, the portable `activate`. Training keeps `activate` everywhere, so its results do not depend on
//! the CPU.

use super::cpu::{activate, simd};
use super::Act;

/// `row = act(row + bias)`.
#[inline(always)]
pub(crate) fn bias_act_in_place(row: &mut [f32], bias: f32, act: Act) {
    match act {
        Act::None => simd(
            #[inline(always)]
            || row.iter_mut().for_each(|v| *v += bias),
        ),
        Act::Relu => simd(
            #[inline(always)]
            || row.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
        ),
        Act::Swish => swish_in_place(row, bias),
    }
}

/// `dst = act(src + bias)` row by row: `dst` holds rows of `width`, `src` the same rows
/// `ld` apart (the MixConv's accumulator, whose rows are wider than the output's). One pass
/// instead of a copy and a pass, and one call for the whole plane: rows are short (7-56).
#[inline(always)]
pub(crate) fn bias_act_rows(src: &[f32], ld: usize, dst: &mut [f32], width: usize, bias: f32, act: Act) {
    let rows = dst.len() / width.max(1);
    assert!(rows * width == dst.len() && ld >= width, "bias_act_rows: {} outputs in rows of {width}", dst.len());
    assert!(rows == 0 || src.len() >= (rows - 1) * ld + width, "bias_act_rows: source too short");
    let (width, ld) = (width.max(1), ld.max(1));
    match act {
        Act::None => simd(
            #[inline(always)]
            || {
                for (d, s) in dst.chunks_exact_mut(width).zip(src.chunks(ld)) {
                    d.iter_mut().zip(s).for_each(|(d, &v)| *d = v + bias);
                }
            },
        ),
        Act::Relu => simd(
            #[inline(always)]
            || {
                for (d, s) in dst.chunks_exact_mut(width).zip(src.chunks(ld)) {
                    d.iter_mut().zip(s).for_each(|(d, &v)| *d = (v + bias).max(0.0));
                }
            },
        ),
        // SAFETY: sizes checked above; `src` and `dst` are distinct borrows.
        Act::Swish => unsafe { swish((src.as_ptr(), ld), (dst.as_mut_ptr(), width), width, rows, bias) },
    }
}

/// `row = swish(row + bias)`.
#[inline(always)]
fn swish_in_place(row: &mut [f32], bias: f32) {
    let p = row.as_mut_ptr();
    // SAFETY: one row of `len` elements; reading and writing the same element is allowed.
    unsafe { swish((p, row.len()), (p, row.len()), row.len(), 1, bias) }
}

/// `dst[r][i] = swish(src[r][i] + bias)` for `rows` rows of `width`, each pointer with its
/// row pitch.
///
/// # Safety
/// The rows are valid for reads (`src`) and writes (`dst`); the two are the same or disjoint.
#[inline(always)]
unsafe fn swish(src: (*const f32, usize), dst: (*mut f32, usize), width: usize, rows: usize, bias: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected just above; the pointers as promised.
        return avx2::swish(src, dst, width, rows, bias);
    }
    simd(
        #[inline(always)]
        || {
            for r in 0..rows {
                for i in 0..width {
                    *dst.0.add(r * dst.1 + i) = activate(*src.0.add(r * src.1 + i) + bias, Act::Swish);
                }
            }
        },
    )
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Eight lanes at a time. A row of 8 or more ends with one vector that overlaps the one
    /// before it (loaded before any store, so in place the overlap is recomputed from the
    /// same inputs and stored with the same values); copying rows of 4-7 into contiguous
    /// rows, each row's vector runs on into the next row, which overwrites it. Only what is
    /// left (the last such row, in-place rows under 8) goes through a masked load (zeros in
    /// the other lanes) and a masked store, which are slow on AMD: masked tails on 7-wide and
    /// 14-wide rows were about a fifth of the swish's samples on MixNet-L (perf). Every element
    /// gets the same arithmetic either way.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA. Row `r` of `src` (`width` elements from `src.0 + r * src.1`)
    /// is valid for reads and row `r` of `dst` for writes, for every `r < rows`; the two are
    /// the same or disjoint.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn swish(src: (*const f32, usize), dst: (*mut f32, usize), width: usize, rows: usize, bias: f32) {
        let b = _mm256_set1_ps(bias);
        let whole = width / 8 * 8;
        let tail = _mm256_set1_epi32((width - whole) as i32);
        let mask = _mm256_cmpgt_epi32(tail, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // A run-on vector stays inside the source (the caller checked `(rows - 1) * ld + width`
        // elements) when `ld + width >= 8`, and inside the destination when `2 * width >= 8`.
        let run_on = (4..8).contains(&width) && src.1 + width >= 8 && dst.1 == width && !std::ptr::eq(src.0, dst.0);
        for r in 0..rows {
            let (s, d) = (src.0.add(r * src.1), dst.0.add(r * dst.1));
            if width >= 8 {
                let last = _mm256_loadu_ps(s.add(width - 8));
                for i in (0..whole).step_by(8) {
                    _mm256_storeu_ps(d.add(i), swish8(_mm256_add_ps(_mm256_loadu_ps(s.add(i)), b)));
                }
                if whole < width {
                    _mm256_storeu_ps(d.add(width - 8), swish8(_mm256_add_ps(last, b)));
                }
            } else if run_on && r + 1 < rows {
                _mm256_storeu_ps(d, swish8(_mm256_add_ps(_mm256_loadu_ps(s), b)));
            } else {
                let v = swish8(_mm256_add_ps(_mm256_maskload_ps(s, mask), b));
                _mm256_maskstore_ps(d, mask, v);
            }
        }
    }

    /// `z * sigmoid(z) = z / (1 + exp(-z))`, with `exp` as in `cpu::exp_neg_f32` (the same
    /// clamp, range reduction and polynomial) in fused multiply-adds.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA: call it only from a function compiled for them (`swish`
    /// above), into which it inlines.
    #[inline(always)]
    unsafe fn swish8(z: __m256) -> __m256 {
        let ps = _mm256_set1_ps;
        let x = _mm256_sub_ps(_mm256_setzero_ps(), z);
        let x = _mm256_max_ps(_mm256_min_ps(x, ps(88.0)), ps(-87.0));
        const MAGIC: f32 = 12_582_912.0;
        let t = _mm256_fmadd_ps(x, ps(std::f32::consts::LOG2_E), ps(MAGIC));
        let n = _mm256_sub_ps(t, ps(MAGIC));
        let r = _mm256_fnmadd_ps(n, ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, ps(-2.121_944_4e-4), r);
        let mut p = ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = _mm256_fmadd_ps(p, r, ps(c));
        }
        let y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), ps(1.0));
        let bits = _mm256_add_epi32(
            _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B40_0000)),
            _mm256_set1_epi32(127),
        );
        let e = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)));
        let d = _mm256_add_ps(e, ps(1.0));
        // 1/d: the ~12-bit estimate and one Newton step, r' = r + r (1 - d r).
        let inv = _mm256_rcp_ps(d);
        let inv = _mm256_fmadd_ps(_mm256_fnmadd_ps(d, inv, ps(1.0)), inv, inv);
        _mm256_mul_ps(z, inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 swish over the range where it matters and the clamped extremes, every
    /// length from 0 to 19 (whole blocks of eight and every tail), for each activation, in place
    /// and copying.
    #[test]
    fn matches_f64_for_every_activation_and_tail() {
        let f64_act = |z: f64, act: Act| match act {
            Act::None => z,
            Act::Relu => z.max(0.0),
            Act::Swish => z / (1.0 + (-z).exp()),
        };
        let bias = 0.25f32;
        for act in [Act::None, Act::Relu, Act::Swish] {
            for len in 0..20 {
                let xs: Vec<f32> = (0..len).map(|i| (i as f32 - 9.5) * 1.37).collect();
                let mut row = xs.clone();
                bias_act_in_place(&mut row, bias, act);
                // The rows form, from a source with rows 3 wider (garbage between), as one row
                // and as rows of every width that divides len.
                for width in (1..=len).filter(|w| len % w == 0) {
                    let ld = width + 3;
                    let mut src = vec![f32::NAN; len / width * ld];
                    for (r, chunk) in xs.chunks(width).enumerate() {
                        src[r * ld..r * ld + width].copy_from_slice(chunk);
                    }
                    let mut rows = vec![f32::NAN; len];
                    bias_act_rows(&src, ld, &mut rows, width, bias, act);
                    assert_eq!(rows, row, "{act:?} len {len} width {width}: the rows form differs");
                }
                for (&x, &got) in xs.iter().zip(&row) {
                    let want = f64_act(x as f64 + bias as f64, act);
                    let err = (got as f64 - want).abs() / want.abs().max(1e-3);
                    assert!(err < 1e-6, "{act:?} len {len} x {x}: {got} vs {want}");
                }
            }
        }
        let mut wide: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.05).collect();
        let want: Vec<f64> = wide.iter().map(|&z| f64_act(z as f64, Act::Swish)).collect();
        bias_act_in_place(&mut wide, 0.0, Act::Swish);
        for (got, want) in wide.iter().zip(want) {
            assert!((*got as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3), "{got} vs {want}");
        }
        let mut extremes = [-1e4f32, -100.0, 100.0, 1e4];
        bias_act_in_place(&mut extremes, 0.0, Act::Swish);
        let ok = [
            extremes[0].abs() < 1e-30,
            extremes[1].abs() < 1e-30,
            (extremes[2] / 100.0 - 1.0).abs() < 1e-6,
            (extremes[3] / 1e4 - 1.0).abs() < 1e-6,
        ];
        assert_eq!(ok, [true; 4], "{extremes:?}");
    }
}
