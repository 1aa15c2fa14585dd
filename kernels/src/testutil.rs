//! Test helpers: seeded random tensors, autograd gradients of a weighted sum, closeness checks
//! and central finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Uniform in [-1, 1), reproducible from `seed`.
pub fn rand(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = shape.iter().product();
    let v: Vec<f64> = (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
}

/// A tensor's values, flattened, as f32 (for the kernels that take slices).
pub fn vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// `f(inputs)` and the gradient of `sum(f(inputs) * r)` w.r.t. each input, for a fixed random `r`.
pub fn value_and_grads(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
    let vars = inputs.iter().map(Var::from_tensor).collect::<Result<Vec<_>>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts)?;
    let r = rand(y.dims(), 7, y.dtype())?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let gs = ts.iter().map(|t| grads.get(t).cloned().expect("input gets a gradient")).collect();
    Ok((y, gs))
}

/// Largest absolute difference, relative to `max(1, largest |b|)`.
pub fn rel_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let (a, b) = (a.to_dtype(DType::F64)?.flatten_all()?, b.to_dtype(DType::F64)?.flatten_all()?);
    let diff = (&a - &b)?.abs()?.max(0)?.to_scalar::<f64>()?;
    let scale = b.abs()?.max(0)?.to_scalar::<f64>()?.max(1.0);
    Ok(diff / scale)
}

pub fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) -> Result<()> {
    let d = rel_diff(a, b)?;
    assert!(d <= tol, "{what}: relative difference {d:e} > {tol:e}");
    Ok(())
}

/// The fast op `fast` agrees with `reference` in value and in every input gradient (f32).
pub fn check_against(
    fast: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    reference: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    what: &str,
) -> Result<()> {
    let (y, gs) = value_and_grads(fast, inputs)?;
    let (y_ref, gs_ref) = value_and_grads(reference, inputs)?;
    assert_close(&y, &y_ref, 1e-5, &format!("{what}: forward"))?;
    for (i, (g, g_ref)) in gs.iter().zip(&gs_ref).enumerate() {
        assert_close(g, g_ref, 1e-4, &format!("{what}: gradient of input {i}"))?;
    }
    Ok(())
}

/// Autograd gradients of `f` (f64) match central finite differences on up to `probes` elements
/// of each input.
pub fn grad_check(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], probes: usize, what: &str) -> Result<()> {
    let (y, gs) = value_and_grads(f, inputs)?;
    let r = rand(y.dims(), 7, DType::F64)?;
    let loss = |ts: &[Tensor]| -> Result<f64> { (f(ts)? * &r)?.sum_all()?.to_scalar::<f64>() };
    let h = 1e-5;
    for (i, (x, g)) in inputs.iter().zip(&gs).enumerate() {
        let base = x.flatten_all()?.to_vec1::<f64>()?;
        let g = g.flatten_all()?.to_vec1::<f64>()?;
        let step = base.len().div_ceil(probes).max(1);
        for j in (0..base.len()).step_by(step) {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut ts = inputs.to_vec();
                ts[i] = Tensor::from_vec(v, x.dims(), x.device())?;
                loss(&ts)
            };
            let numeric = (at(h)? - at(-h)?) / (2.0 * h);
            let err = (numeric - g[j]).abs() / numeric.abs().max(1.0);
            assert!(err < 1e-6, "{what}: input {i} element {j}: autograd {} vs numeric {numeric}", g[j]);
        }
    }
    Ok(())
}
