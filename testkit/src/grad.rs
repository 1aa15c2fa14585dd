//! Gradient checks: autograd gradients of a weighted sum, a fast op against its reference, and
//! autograd against central finite differences.

use candle_core::{DType, Result, Tensor, Var};

use crate::float::assert_close;
use crate::tensor::rand;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_ops_pass_their_own_checks() -> Result<()> {
        let square = |ts: &[Tensor]| ts[0].sqr();
        grad_check(&square, &[rand(&[2, 3], 1, DType::F64)?], 6, "square")?;
        let times_self = |ts: &[Tensor]| &ts[0] * &ts[0];
        check_against(&square, &times_self, &[rand(&[2, 3], 1, DType::F32)?], "square vs x * x")
    }
}
