//! Plumbing shared by the CPU kernels: the float trait they are generic over, dtype dispatch,
//! contiguous input slices and the activation maths.

use candle_core::{bail, CpuStorage, DType, Error, Layout, Result, Tensor, WithDType};

use super::Act;

/// The element types the kernels run on: f32 for training and inference, f64 for gradient checks.
pub(crate) trait Real: WithDType {
    const ZERO: Self;
    const ONE: Self;
    fn exp(self) -> Self;
    /// `max(self, 0)`.
    fn relu(self) -> Self;
    fn storage(v: Vec<Self>) -> CpuStorage {
        Self::to_cpu_storage_owned(v)
    }
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn relu(self) -> Self {
                <$t>::max(self, 0.0)
            }
        }
    };
}
real!(f32);
real!(f64);

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
            dt => Err($crate::ops::cpu::unsupported($op, dt)),
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

/// How many elements a rayon task should cover at least, so tiny planes are not split apart.
pub(crate) fn min_planes(plane: usize) -> usize {
    (4096 / plane.max(1)).max(1)
}

#[inline(always)]
pub(crate) fn sigmoid<T: Real>(z: T) -> T {
    T::ONE / (T::ONE + (T::ZERO - z).exp())
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
