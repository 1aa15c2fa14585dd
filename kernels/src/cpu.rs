//! Plumbing shared by the CPU kernels: the float trait they are generic over, dtype dispatch,
//! contiguous input slices and the activation maths.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, DType, Error, Layout, Result, Tensor, WithDType};

use super::Act;

/// The element types the kernels run on: f32 for training and inference, f64 for gradient checks.
pub(crate) trait Real: WithDType {
    const ZERO: Self;
    const ONE: Self;
    /// `exp(-self)` for the sigmoid: f32 uses a branch-free polynomial (about 2 ulp, and it
    /// vectorises), f64 keeps the libm exp for the gradient checks.
    fn exp_neg(self) -> Self;
    /// `max(self, 0)`.
    fn relu(self) -> Self;
    fn storage(v: Vec<Self>) -> CpuStorage {
        Self::to_cpu_storage_owned(v)
    }
}

macro_rules! real {
    ($t:ty, $exp_neg:ident) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn exp_neg(self) -> Self {
                $exp_neg(self)
            }
            #[inline(always)]
            fn relu(self) -> Self {
                <$t>::max(self, 0.0)
            }
        }
    };
}
real!(f32, exp_neg_f32);
real!(f64, exp_neg_f64);

#[inline(always)]
fn exp_neg_f64(x: f64) -> f64 {
    (-x).exp()
}

/// Cephes-style `expf(-x)`: clamp, split `x * log2(e)` into integer and fraction, degree-6
/// polynomial, scale by `2^n` through the exponent bits. No calls and no branches, so loops
/// over it vectorise.
#[inline(always)]
fn exp_neg_f32(x: f32) -> f32 {
    let x = -x;
    let x = if x > 88.0 { 88.0 } else { x };
    let x = if x < -87.0 { -87.0 } else { x };
    // Round-to-nearest via the 1.5 * 2^23 trick (no floor call, exact for |v| < 2^22).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let bits = (t.to_bits() as i32).wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    y * f32::from_bits(bits as u32)
}

/// The error every op gives for a dtype other than f32/f64.
pub(crate) fn unsupported(op: &str, dtype: DType) -> Error {
    Error::Msg(format!("{op}: unsupported dtype {dtype:?}, the CPU kernels take f32 or f64"))
}

/// Runs `$body` with `$t` bound to the element type of `$storage` (f32 or f64), else fails.
macro_rules! dispatch {
    ($op:expr, $storage:expr, $t:ident => $body:expr) => {
        match candle_core::backend::BackendStorage::dtype($storage) {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            dt => Err($crate::cpu::unsupported($op, dt)),
        }
    };
}
pub(crate) use dispatch;

/// The contiguous elements of one input. The public wrappers make inputs contiguous first, so
/// the error only fires on misuse of an op struct.
pub(crate) fn slice<'a, T: WithDType>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: input is not contiguous (make it contiguous before applying the op)")
    };
    Ok(&T::cpu_storage_as_slice(s)?[start..end])
}

/// Checks that every tensor shares the first one's dtype and is f32 or f64.
pub(crate) fn check_dtypes(op: &str, ts: &[&Tensor]) -> Result<()> {
    let dt = ts[0].dtype();
    if !matches!(dt, DType::F32 | DType::F64) {
        return Err(unsupported(op, dt));
    }
    if let Some(t) = ts.iter().find(|t| t.dtype() != dt) {
        bail!("{op}: mixed dtypes {dt:?} and {:?}", t.dtype())
    }
    Ok(())
}

/// A vector of `len` elements that `fill` initialises, without zeroing them first: zeroing
/// outputs that a kernel then overwrites was 13% of batch-1 inference.
///
/// # Safety
/// `fill` must initialise every element of the slice it is given.
pub(crate) unsafe fn filled<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    v.set_len(len);
    v
}

/// Zeroes `slots` and hands them back initialised: for kernels that accumulate into their
/// output, one plane at a time, while it is in cache.
pub(crate) fn zeroed<T: Real>(slots: &mut [MaybeUninit<T>]) -> &mut [T] {
    slots.fill(MaybeUninit::new(T::ZERO));
    // SAFETY: every element was just initialised, and MaybeUninit<T> has T's layout.
    unsafe { &mut *(slots as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `out[i] = f(xs[i])` into uninitialised slots. Call inside [`simd`].
#[inline(always)]
pub(crate) fn write_map<T: Copy>(out: &mut [MaybeUninit<T>], xs: &[T], f: impl Fn(T) -> T) {
    for (y, &x) in out.iter_mut().zip(xs) {
        y.write(f(x));
    }
}

/// Partial sums per reduction: independent lanes let the loop vectorise, where one running sum
/// is a serial chain the compiler must keep in order.
pub(crate) const LANES: usize = 16;

/// `sum f(x)` over `xs`, in [`LANES`] partial sums. Call inside [`simd`].
#[inline(always)]
pub(crate) fn lane_sum<T: Real>(xs: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    let tail = chunks.remainder().iter().fold(T::ZERO, |s, &v| s + f(v));
    acc.iter().fold(tail, |s, &v| s + v)
}

/// How many elements a rayon task should cover at least, so tiny planes are not split apart.
pub(crate) fn min_planes(plane: usize) -> usize {
    (4096 / plane.max(1)).max(1)
}

/// Runs `f` compiled for AVX2 + FMA when the CPU has them (8-wide f32 loops instead of SSE2's
/// 4), else as is. `f` and what it calls on the hot path must be `#[inline(always)]`. LLVM does
/// not contract `a * b + c` into an FMA, so results are bit-identical either way. On aarch64
/// NEON is baseline, so the portable loops are already 4-wide NEON and nothing is switched.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU has AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected just above.
            return unsafe { run(f) };
        }
    }
    f()
}

#[inline(always)]
pub(crate) fn sigmoid<T: Real>(z: T) -> T {
    T::ONE / (T::ONE + z.exp_neg())
}

#[cfg(test)]
#[test]
fn fast_exp_is_accurate() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x < 87.0 {
        let (got, want) = (exp_neg_f32(-x) as f64, (x as f64).exp());
        worst = worst.max(((got - want) / want).abs());
        x += 0.001_3;
    }
    assert!(worst < 5e-7, "worst relative error {worst:e}");
    assert!(exp_neg_f32(-1000.0) > 1e38 && exp_neg_f32(1000.0) < 1e-37 && exp_neg_f32(1000.0) >= 0.0);
}

#[inline(always)]
pub(crate) fn activate<T: Real>(z: T, act: Act) -> T {
    match act {
        Act::None => z,
        Act::Relu => z.relu(),
        Act::Swish => z * sigmoid(z),
    }
}

/// d act(z) / dz.
#[inline(always)]
pub(crate) fn act_grad<T: Real>(z: T, act: Act) -> T {
    match act {
        Act::None => T::ONE,
        Act::Relu => {
            if z > T::ZERO {
                T::ONE
            } else {
                T::ZERO
            }
        }
        Act::Swish => {
            let s = sigmoid(z);
            s * (T::ONE + z * (T::ONE - s))
        }
    }
}

/// Splits a packed `[a | b | ...]` result of a backward op into tensors of the given shapes.
pub(crate) fn unpack(packed: &Tensor, shapes: &[&[usize]]) -> Result<Vec<Tensor>> {
    let mut start = 0;
    shapes
        .iter()
        .map(|s| {
            let len: usize = s.iter().product();
            let t = packed.narrow(0, start, len)?.reshape(*s)?;
            start += len;
            Ok(t)
        })
        .collect()
}
