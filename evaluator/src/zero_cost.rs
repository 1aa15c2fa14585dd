//! Zero-cost scores: a number per untrained network, in about a second, that some papers find
//! ranks networks a little (`nas fidelity` measures how much here). SynFlow (Tanaka et al.,
//! 2020): with every parameter replaced by its absolute value and an all-ones input, the output's
//! sum `R`; the score is `sum |theta * dR/dtheta|` over all parameters. Batch norm runs in eval
//! mode on its initial statistics (mean 0, variance 1), so it scales by `gamma / sqrt(1 + eps)`
//! and does not normalise the signal away. The products are summed in f64.
//!
//! NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021): the
//! untrained network sees one batch of training images in train mode (batch statistics, as the
//! paper's freshly built networks do), and every activation (ReLU or swish) gives each image
//! one bit per output element, whether the activation's input is positive (swish keeps the
//! sign, so its output's sign is that bit too). With `c_i` image `i`'s bits over the whole
//! network, `N` of them, the kernel is `K[i][j] = N - hamming(c_i, c_j)` and the score is
//! `ln det K`: networks that keep the images apart score high.

use candle_core::{DType, Device, Result, Tensor};
use space::Arch;

use crate::model::{adapt_for_resolution, Activations, MixNet};

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

/// The NASWOT score of `arch` (adapted for the images' side as training would be) on
/// `images` (`[B, C, H, W]`, normalised as for training), initialised from `seed`:
/// `ln det K` of the activation codes' kernel, `-inf` when `K` is singular (two images the
/// network codes alike, as duplicates are). Otherwise at least 0: `K` is an integer matrix, so
/// a positive determinant is at least 1.
pub fn naswot(arch: &Arch, images: &Tensor, classes: usize, seed: u64) -> Result<f64> {
    let (_, channels, side, _) = images.dims4()?;
    let mut arch = adapt_for_resolution(arch, side);
    arch.stem.in_ch = channels;
    arch.classes = classes;
    let net = MixNet::new(&arch, seed, &Device::Cpu)?;
    let mut acts = Activations::recording();
    crate::on_pool(|| net.features_recording(images, true, &mut acts))?;
    Ok(log_det(&Codes::of(&acts.into_outputs())?.kernel()))
}

/// Each image's activation codes, packed 64 to a word: bit `k` of row `i` is whether element
/// `k` of image `i`'s activations (all of them, in forward order) is positive.
pub struct Codes {
    bits: usize,
    rows: Vec<Vec<u64>>,
}

impl Codes {
    /// The codes of activation outputs, each `[B, ...]` with the same `B`.
    pub fn of(outputs: &[Tensor]) -> Result<Self> {
        let Some(first) = outputs.first() else { candle_core::bail!("naswot: the network has no activation") };
        let images = first.dim(0)?;
        let mut codes = Codes { bits: 0, rows: vec![Vec::new(); images] };
        for output in outputs {
            let values = output.flatten_from(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            if values.len() != images {
                candle_core::bail!("naswot: an activation holds {} images, the first {images}", values.len())
            }
            let width = values[0].len();
            for (row, image) in codes.rows.iter_mut().zip(&values) {
                row.resize((codes.bits + width).div_ceil(64), 0);
                for (k, _) in image.iter().enumerate().filter(|(_, &v)| v > 0.0) {
                    let bit = codes.bits + k;
                    row[bit / 64] |= 1 << (bit % 64);
                }
            }
            codes.bits += width;
        }
        Ok(codes)
    }

    /// `K[i][j] = N - hamming(c_i, c_j)`, the number of bits on which images `i` and `j` agree.
    pub fn kernel(&self) -> Vec<Vec<f64>> {
        let n = self.rows.len();
        let mut k = vec![vec![self.bits as f64; n]; n];
        for (i, a) in self.rows.iter().enumerate() {
            for (j, b) in self.rows[..i].iter().enumerate() {
                let hamming: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
                k[i][j] = (self.bits - hamming as usize) as f64;
                k[j][i] = k[i][j];
            }
        }
        k
    }
}

/// A Cholesky pivot at most this fraction of the diagonal counts as zero. The kernel's entries
/// are integers up to `N`; rounding leaves a singular one pivots near `1e-14 N`, while a real
/// network's pivots are a sizeable fraction of `N`.
const SINGULAR_PIVOT: f64 = 1e-9;

/// `ln det k` of a symmetric positive semi-definite matrix by Cholesky in f64: `-inf` when it is
/// singular (a pivot at most [`SINGULAR_PIVOT`] of its diagonal entry).
pub fn log_det(k: &[Vec<f64>]) -> f64 {
    let n = k.len();
    let mut l = vec![vec![0.0; n]; n];
    let mut log_det = 0.0;
    for j in 0..n {
        let pivot = k[j][j] - l[j][..j].iter().map(|v| v * v).sum::<f64>();
        if pivot <= SINGULAR_PIVOT * k[j][j] {
            return f64::NEG_INFINITY;
        }
        let d = pivot.sqrt();
        l[j][j] = d;
        log_det += pivot.ln();
        for i in j + 1..n {
            let dot: f64 = l[i][..j].iter().zip(&l[j][..j]).map(|(a, b)| a * b).sum();
            l[i][j] = (k[i][j] - dot) / d;
        }
    }
    log_det
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

    /// Seeded values in [-1, 1) with a third of them exactly 0 (as ReLU leaves), `[images, width]`.
    fn outputs(images: usize, width: usize, seed: u64) -> Result<Tensor> {
        let t = testkit::tensor::rand(&[images, width], seed, DType::F32)?;
        let zero = testkit::tensor::rand(&[images, width], seed + 1, DType::F32)?.lt(-1.0 / 3.0)?;
        zero.where_cond(&t.zeros_like()?, &t)
    }

    #[test]
    fn the_kernel_counts_agreeing_bits_across_all_activations() -> Result<()> {
        // Widths off the 64-bit words, so codes of one image run across words and activations.
        let acts = [outputs(6, 70, 1)?, outputs(6, 5, 3)?.reshape((6, 5, 1))?, outputs(6, 130, 5)?];
        let c: Vec<Vec<f64>> = (0..6)
            .map(|i| {
                let per_act = acts.iter().map(|a| a.get(i)?.flatten_all()?.to_vec1::<f32>());
                let values: Vec<f32> = per_act.collect::<Result<Vec<_>>>()?.concat();
                Ok(values.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect())
            })
            .collect::<Result<_>>()?;
        // K = C C^T + (1 - C)(1 - C)^T, element by element.
        let k = Codes::of(&acts)?.kernel();
        for (i, (ci, ki)) in c.iter().zip(&k).enumerate() {
            for (j, (cj, &kij)) in c.iter().zip(ki).enumerate() {
                let agree: f64 = ci.iter().zip(cj).map(|(a, b)| a * b + (1.0 - a) * (1.0 - b)).sum();
                assert_eq!(kij, agree, "K[{i}][{j}]");
            }
        }
        assert_eq!(k[0][0], 205.0);
        assert!(k[0][1] < 205.0);
        Ok(())
    }

    #[test]
    fn log_det_matches_a_hand_computed_determinant_and_flags_a_singular_kernel() {
        // det [[4, 2], [2, 3]] = 8.
        assert!((log_det(&[vec![4.0, 2.0], vec![2.0, 3.0]]) - 8f64.ln()).abs() < 1e-12);
        assert_eq!(log_det(&[vec![3.0, 3.0], vec![3.0, 3.0]]), f64::NEG_INFINITY);
    }

    fn images(batch: usize, seed: u64) -> Result<Tensor> {
        testkit::tensor::rand(&[batch, 3, 32, 32], seed, DType::F32)
    }

    fn macro_net() -> Arch {
        space::family::nas_bench_macro("00000000").unwrap()
    }

    #[test]
    fn naswot_is_seeded_finite_and_tells_networks_apart() -> Result<()> {
        let x = images(32, 7)?;
        let a = naswot(&macro_net(), &x, 10, 1)?;
        assert_eq!(a, naswot(&macro_net(), &x, 10, 1)?);
        assert!(a.is_finite() && a > 0.0, "{a}");
        assert_ne!(a, naswot(&macro_net(), &x, 10, 2)?, "another initialisation, another score");
        let large = naswot(&space::family::nas_bench_macro("22222222").unwrap(), &x, 10, 1)?;
        assert!(large.is_finite() && large != a, "{large} vs {a}");
        Ok(())
    }

    /// The score is of the set of images: reordering the batch permutes the kernel's rows and
    /// columns alike. Permuted after the forward pass, because batch norm's sums in another
    /// order may flip a bit near zero.
    #[test]
    fn the_score_ignores_the_batch_order() -> Result<()> {
        let net = MixNet::new(&macro_net(), 3, &Device::Cpu)?;
        let mut acts = Activations::recording();
        net.features_recording(&images(24, 9)?, true, &mut acts)?;
        let outputs = acts.into_outputs();
        let mut order: Vec<u32> = (0..24).collect();
        crate::rng::SplitMix64::new(4).shuffle(&mut order);
        let order = Tensor::new(order.as_slice(), &Device::Cpu)?;
        let shuffled: Vec<Tensor> = outputs.iter().map(|o| o.index_select(&order, 0)).collect::<Result<_>>()?;
        let (a, b) = (log_det(&Codes::of(&outputs)?.kernel()), log_det(&Codes::of(&shuffled)?.kernel()));
        assert!(a.is_finite() && (a - b).abs() < 1e-9, "{a} vs {b}");
        Ok(())
    }

    #[test]
    fn a_duplicated_image_makes_the_kernel_singular() -> Result<()> {
        let x = images(16, 11)?;
        let twice = Tensor::cat(&[&x.narrow(0, 0, 15)?, &x.narrow(0, 3, 1)?], 0)?;
        assert!(naswot(&macro_net(), &x, 10, 1)?.is_finite());
        assert_eq!(naswot(&macro_net(), &twice, 10, 1)?, f64::NEG_INFINITY);
        Ok(())
    }
}
