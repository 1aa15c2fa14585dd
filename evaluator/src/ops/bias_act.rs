//! `row = act(row + bias)` in place, the epilogue of every conv on the eval path
//! ([`crate::model::EvalNet`]). Swish is most of its cost: at batch 1 it was ~17% of MixNet-L's
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

/// `row = swish(row + bias)`.
#[inline(always)]
fn swish_in_place(row: &mut [f32], bias: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected just above.
        return unsafe { avx2::swish_in_place(row, bias) };
    }
    simd(
        #[inline(always)]
        || row.iter_mut().for_each(|v| *v = activate(*v + bias, Act::Swish)),
    )
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Eight lanes at a time; the tail goes through a zero-padded block of eight, so every
    /// element gets the same arithmetic.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn swish_in_place(row: &mut [f32], bias: f32) {
        let b = _mm256_set1_ps(bias);
        let mut chunks = row.chunks_exact_mut(8);
        for c in &mut chunks {
            let p = c.as_mut_ptr();
            _mm256_storeu_ps(p, swish8(_mm256_add_ps(_mm256_loadu_ps(p), b)));
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut block = [0f32; 8];
            block[..tail.len()].copy_from_slice(tail);
            let v = swish8(_mm256_add_ps(_mm256_loadu_ps(block.as_ptr()), b));
            _mm256_storeu_ps(block.as_mut_ptr(), v);
            tail.copy_from_slice(&block[..tail.len()]);
        }
    }

    /// `z * sigmoid(z) = z / (1 + exp(-z))`, with `exp` as in `cpu::exp_neg_f32` (the same
    /// clamp, range reduction and polynomial) in fused multiply-adds.
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
    /// length from 0 to 19 (whole blocks of eight and every tail), for each activation.
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
