//! Float comparisons for tests: tensors by their largest difference, scalars by an absolute or
//! a relative tolerance.

use candle_core::{DType, Result, Tensor};

/// The largest `|a - b|` over all elements, in the tensors' own dtype, as f32.
///
/// # Panics
/// If the shapes differ or the tensors cannot be subtracted.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let max = || (a - b)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F32)?.to_scalar::<f32>();
    max().unwrap_or_else(|e| panic!("max abs diff: {e}"))
}

/// Largest absolute difference, relative to `max(1, largest |b|)` (computed in f64).
pub fn rel_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let (a, b) = (a.to_dtype(DType::F64)?.flatten_all()?, b.to_dtype(DType::F64)?.flatten_all()?);
    let diff = (&a - &b)?.abs()?.max(0)?.to_scalar::<f64>()?;
    let scale = b.abs()?.max(0)?.to_scalar::<f64>()?.max(1.0);
    Ok(diff / scale)
}

/// Asserts [`rel_diff`]`(a, b) <= tol`; `what` names the comparison in the failure.
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) -> Result<()> {
    let d = rel_diff(a, b)?;
    assert!(d <= tol, "{what}: relative difference {d:e} > {tol:e}");
    Ok(())
}

/// Asserts `|actual - expected| < tol`.
pub fn assert_abs_close(actual: impl Into<f64>, expected: f64, tol: f64) {
    let actual = actual.into();
    assert!((actual - expected).abs() < tol, "{actual} vs {expected} (tolerance {tol:e})");
}

/// Asserts `|actual - expected| <= rel * |expected|`, with `|expected|` taken as at least `rel`
/// so that an expected 0 still allows rounding at the scale of `rel²`.
pub fn assert_rel_close(actual: f64, expected: f64, rel: f64) {
    assert!((actual - expected).abs() <= rel * expected.abs().max(rel), "{actual} != {expected} (relative {rel:e})");
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn tensor_differences() -> Result<()> {
        let a = Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu)?;
        let b = Tensor::new(&[1f32, -2.5, 3.25], &Device::Cpu)?;
        assert_eq!(max_abs_diff(&a, &b), 0.5);
        assert_eq!(rel_diff(&a, &b)?, 0.5 / 3.25);
        assert_close(&a, &a, 0.0, "itself")?;
        Ok(())
    }

    #[test]
    #[should_panic(expected = "shapes differ")]
    fn shapes_must_match() {
        let a = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        max_abs_diff(&a, &a.reshape((3, 1)).unwrap());
    }

    #[test]
    fn scalar_tolerances() {
        assert_abs_close(0.1f32, 0.1, 1e-6);
        assert_rel_close(1e6 + 1e-7, 1e6, 1e-12);
        assert_rel_close(0.0, 0.0, 1e-12);
    }

    #[test]
    #[should_panic(expected = "1 vs 1.000002")]
    fn absolute_tolerance_is_absolute() {
        assert_abs_close(1.0, 1.0 + 2e-6, 1e-6);
    }

    #[test]
    #[should_panic(expected = "relative 1e-12")]
    fn relative_tolerance_scales_with_the_expected_value() {
        assert_rel_close(1e-3 + 1e-12, 1e-3, 1e-12);
    }
}
