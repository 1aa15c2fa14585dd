//! Classification loss and accuracy on logits `[B, K]` with `u32` labels `[B]`.

use candle_core::{bail, DType, Result, Tensor, D};

/// Mean cross-entropy with label smoothing `s`, as PyTorch's `cross_entropy(label_smoothing=s)`:
/// `(1 - s) * nll + s * mean_k(-log p_k)`. Built from candle ops, so it is differentiable.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    let (b, k) = logits.dims2()?;
    if labels.dims() != [b] || labels.dtype() != DType::U32 {
        bail!("cross_entropy: labels must be u32 [{b}], found {:?} {:?}", labels.dtype(), labels.dims())
    }
    if !(0.0..=1.0).contains(&smoothing) {
        bail!("cross_entropy: label smoothing {smoothing} must lie in [0, 1]")
    }
    let logp = log_softmax_rows(logits)?;
    // The smoothed target q = (1 - s) one_hot + s / K folded into one weighted sum per row.
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
    let per_row = if smoothing > 0.0 {
        let mean_logp = (logp.sum(1)? / k as f64)?;
        ((picked * (1.0 - smoothing))? + (mean_logp * smoothing)?)?
    } else {
        picked
    };
    per_row.mean_all()?.neg()
}

/// Row-wise log-softmax; the row max is detached, which is exact because log-softmax does not
/// change under a per-row shift, and it keeps `max`'s backward out of the graph.
fn log_softmax_rows(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Number of rows whose arg-max equals the label (ties go to the lowest index).
pub fn top1_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let (b, _) = logits.dims2()?;
    if labels.dims() != [b] {
        bail!("top1_correct: labels must be [{b}], found {:?}", labels.dims())
    }
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred.eq(&labels.to_dtype(DType::U32)?)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn smoothed_ce_matches_hand_value_and_gradient_sign() {
        let logits = Var::new(&[[2.0f32, 0.0, -1.0], [0.5, 0.5, 3.0]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let loss = cross_entropy(logits.as_tensor(), &labels, 0.1).unwrap();
        // Hand value in f64 for the same rows.
        let rows = [([2.0f64, 0.0, -1.0], 0), ([0.5, 0.5, 3.0], 1)];
        let expected = rows
            .iter()
            .map(|(x, y)| {
                let lse = x.iter().map(|v| v.exp()).sum::<f64>().ln();
                let logp: Vec<f64> = x.iter().map(|v| v - lse).collect();
                0.9 * -logp[*y] + 0.1 * -logp.iter().sum::<f64>() / 3.0
            })
            .sum::<f64>()
            / 2.0;
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        let grads = loss.backward().unwrap();
        let g = grads.get(logits.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        // Raising the true class lowers the loss; raising a wrong confident one raises it.
        assert!(g[0][0] < 0.0 && g[1][1] < 0.0 && g[1][2] > 0.0);
        // Gradient rows of softmax CE sum to zero.
        assert!(g.iter().all(|r| r.iter().sum::<f32>().abs() < 1e-6));
    }

    #[test]
    fn no_smoothing_is_plain_nll_and_stable() {
        let logits = Tensor::new(&[[1000.0f32, 0.0]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1u32], &Device::Cpu).unwrap();
        let loss = cross_entropy(&logits, &labels, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(loss, 1000.0);
        assert!(cross_entropy(&logits, &Tensor::new(&[1u32, 0], &Device::Cpu).unwrap(), 0.0).is_err());
    }

    #[test]
    fn top1_counts_matches() {
        let logits = Tensor::new(&[[0.1f32, 0.9], [0.8, 0.2], [0.3, 0.7]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1u32, 1, 1], &Device::Cpu).unwrap();
        assert_eq!(top1_correct(&logits, &labels).unwrap(), 2);
    }

    /// Run with `--ignored --nocapture` to print the forward+backward cost at B=64, K=1000.
    #[test]
    #[ignore]
    fn bench_ce_forward_backward() {
        let logits = Var::from_tensor(&Tensor::randn(0f32, 3.0, (64, 1000), &Device::Cpu).unwrap()).unwrap();
        let labels = Tensor::arange(0u32, 64, &Device::Cpu).unwrap();
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = std::time::Instant::now();
            let loss = cross_entropy(logits.as_tensor(), &labels, 0.1).unwrap();
            loss.backward().unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!("cross_entropy fwd+bwd B=64 K=1000: median {:.3} ms", times[times.len() / 2]);
    }
}
