//! Zero-cost scores: a number per untrained network, in about a second, that some papers find
//! ranks networks a little (`nas fidelity` measures how much here). SynFlow (Tanaka et al.,
//! 2020): with every parameter replaced by its absolute value and an all-ones input, the output's
//! sum `R`; the score is `sum |theta * dR/dtheta|` over all parameters. Batch norm runs in eval
//! mode on its initial statistics (mean 0, variance 1), so it scales by `gamma / sqrt(1 + eps)`
//! and does not normalise the signal away. The products are summed in f64.

use candle_core::{DType, Device, Result, Tensor};
use space::Arch;

use crate::model::{adapt_for_resolution, MixNet};

/// The SynFlow score of `arch` (adapted for `resolution` as training would be), initialised
/// from `seed`, with `classes` outputs and `channels` input channels.
pub fn synflow(arch: &Arch, resolution: usize, channels: usize, classes: usize, seed: u64) -> Result<f64> {
    let mut arch = adapt_for_resolution(arch, resolution);
    arch.stem.in_ch = channels;
    arch.classes = classes;
    let net = MixNet::new(&arch, seed, &Device::Cpu)?;
    let params = net.trainable();
    for (_, var) in &params {
        var.set(&var.as_tensor().to_dtype(DType::F64)?.abs()?.to_dtype(var.dtype())?)?;
    }
    let ones = Tensor::ones((1, channels, resolution, resolution), DType::F32, &Device::Cpu)?;
    let out = crate::on_pool(|| net.forward_eval_unfused(&ones))?;
    let grads = out.to_dtype(DType::F64)?.sum_all()?.backward()?;
    let mut score = 0.0;
    for (name, var) in &params {
        let Some(g) = grads.get(var.as_tensor()) else { candle_core::bail!("synflow: no gradient reached {name}") };
        let product = (var.as_tensor().to_dtype(DType::F64)? * g.to_dtype(DType::F64)?)?.abs()?;
        score += product.sum_all()?.to_scalar::<f64>()?;
    }
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synflow_is_seeded_positive_and_grows_with_the_network() -> Result<()> {
        let small = space::family::nas_bench_macro("00000000").unwrap();
        let large = space::family::nas_bench_macro("22222222").unwrap();
        let a = synflow(&small, 32, 3, 10, 1)?;
        assert_eq!(a, synflow(&small, 32, 3, 10, 1)?);
        assert!(a.is_finite() && a > 0.0, "{a}");
        let b = synflow(&large, 32, 3, 10, 1)?;
        assert!(b > a, "the larger network scores {b}, the smaller {a}");
        Ok(())
    }
}
