//! `MixNet`: a candle network built from a `space::Arch`, in train or eval mode.
//!
//! Block order follows the reference (section 2.1): [expand 1x1, BN, act] -> MixConv, BN, act
//! -> [SE] -> project 1x1, BN -> residual. Parameter names follow from the `Arch` alone:
//! `stem.conv.weight`, `blocks.{i}.{expand,dw,project}.{g}.weight`, `blocks.{i}.bn{1,2,3}.*`,
//! `blocks.{i}.se.{reduce,expand}.*`, `head.conv.0.weight`, `head.bn.*`, `classifier.*`.

mod eval;
pub(crate) mod layers;
pub mod params;

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;
use space::{Arch, Block};

pub use eval::EvalNet;
use kernels::Act;
pub use layers::Activations;
use layers::{BatchNorm, Conv, MixConv, Pointwise, SqueezeExcite};
pub use params::{Named, ParamStore};

/// Inputs at most this large get the proxy adaptation (see [`adapt_for_resolution`]).
pub const PROXY_MAX_RESOLUTION: usize = 64;

/// Proxy adaptation for small images: the stem and the first stride-2 block keep stride 1, so a
/// 32x32 image ends at 4x4 instead of 1x1 (an ImageNet network downsamples by 32). Parameters
/// are unchanged, so weights transfer between the adapted and the original network. A network
/// with its own resolution (`Arch::resolution`, a CIFAR network) is left as it is.
pub fn adapt_for_resolution(arch: &Arch, resolution: usize) -> Arch {
    let mut arch = arch.clone();
    if resolution <= PROXY_MAX_RESOLUTION && arch.resolution.is_none() {
        arch.stem.stride = 1;
        if let Some(b) = arch.blocks.iter_mut().find(|b| b.stride == 2) {
            b.stride = 1;
        }
    }
    arch
}

struct MixBlock {
    expand: Option<(Pointwise, BatchNorm)>,
    dw: MixConv,
    bn2: BatchNorm,
    se: Option<SqueezeExcite>,
    project: Pointwise,
    bn3: BatchNorm,
    residual: bool,
}

/// One layer: an MBConv block, or a plain strided 1x1 conv + BN (`Block::is_plain_conv`), whose
/// tensors are `blocks.{i}.conv.weight` and `blocks.{i}.bn.*`.
enum Layer {
    MbConv(Box<MixBlock>),
    Conv(Conv, BatchNorm),
}

impl Layer {
    fn new(ps: &mut ParamStore, i: usize, b: &Block, arch: &Arch) -> Result<Self> {
        if !b.is_plain_conv() {
            return Ok(Layer::MbConv(Box::new(MixBlock::new(ps, i, b, arch)?)));
        }
        let conv = Conv::new(ps, format!("blocks.{i}.conv.weight"), b.in_ch, b.out, 1, b.stride, arch.padding)?;
        Ok(Layer::Conv(conv, BatchNorm::new(ps, &format!("blocks.{i}.bn"), b.out, arch.bn, Act::None)?))
    }

    fn forward(&self, x: &Tensor, train: bool, acts: &mut Activations) -> Result<Tensor> {
        match self {
            Layer::MbConv(b) => b.forward(x, train, acts),
            Layer::Conv(conv, bn) => bn.forward(&conv.forward(x)?, train, acts),
        }
    }

    fn batch_norms(&self) -> Vec<&BatchNorm> {
        match self {
            Layer::MbConv(b) => b.expand.iter().map(|e| &e.1).chain([&b.bn2, &b.bn3]).collect(),
            Layer::Conv(_, bn) => vec![bn],
        }
    }
}

impl MixBlock {
    fn new(ps: &mut ParamStore, i: usize, b: &Block, arch: &Arch) -> Result<Self> {
        let p = format!("blocks.{i}");
        let act = Act::from(b.act);
        let expand = match b.has_expansion() {
            true => Some((
                Pointwise::new(ps, &format!("{p}.expand"), b.in_ch, b.mid(), b.expand_groups)?,
                BatchNorm::new(ps, &format!("{p}.bn1"), b.mid(), arch.bn, act)?,
            )),
            false => None,
        };
        let dw = MixConv::new(ps, &format!("{p}.dw"), b, arch.padding)?;
        let bn2 = BatchNorm::new(ps, &format!("{p}.bn2"), b.mid(), arch.bn, act)?;
        let se = match b.se_channels() {
            Some(se) => Some(SqueezeExcite::new(ps, &format!("{p}.se"), b.mid(), se, act)?),
            None => None,
        };
        let project = Pointwise::new(ps, &format!("{p}.project"), b.mid(), b.out, b.project_groups)?;
        let bn3 = BatchNorm::new(ps, &format!("{p}.bn3"), b.out, arch.bn, Act::None)?;
        Ok(Self { expand, dw, bn2, se, project, bn3, residual: b.has_residual() })
    }

    fn forward(&self, x: &Tensor, train: bool, acts: &mut Activations) -> Result<Tensor> {
        let mut h = match &self.expand {
            Some((conv, bn)) => bn.forward(&conv.forward(x)?, train, acts)?,
            None => x.clone(),
        };
        h = self.bn2.forward(&self.dw.forward(&h)?, train, acts)?;
        if let Some(se) = &self.se {
            h = se.forward(&h, acts)?;
        }
        h = self.bn3.forward(&self.project.forward(&h)?, train, acts)?;
        if self.residual {
            h = (h + x)?;
        }
        Ok(h)
    }
}

/// A MixNet built from an [`Arch`].
pub struct MixNet {
    arch: Arch,
    stem: (Conv, BatchNorm),
    blocks: Vec<Layer>,
    head: (Pointwise, BatchNorm),
    classifier_w: Var,
    classifier_b: Var,
    params: Vec<Named>,
    /// The stem and blocks `0..n` are a fixed feature extractor in training (fine-tuning).
    frozen_blocks: Option<usize>,
}

impl MixNet {
    /// Builds `arch` (use [`adapt_for_resolution`] first for small inputs) with weights
    /// initialised from `seed` as TF/timm do.
    pub fn new(arch: &Arch, seed: u64, device: &Device) -> Result<Self> {
        let mut ps = ParamStore::new(seed, device);
        let s = &arch.stem;
        let stem_conv =
            Conv::new(&mut ps, "stem.conv.weight".into(), s.in_ch, s.out, s.kernel, s.stride, arch.padding)?;
        let stem = (stem_conv, BatchNorm::new(&mut ps, "stem.bn", s.out, arch.bn, Act::Relu)?);
        let blocks =
            arch.blocks.iter().enumerate().map(|(i, b)| Layer::new(&mut ps, i, b, arch)).collect::<Result<_>>()?;
        let width = arch.head.width;
        let head = (
            Pointwise::new(&mut ps, "head.conv", arch.last_channels(), width, 1)?,
            BatchNorm::new(&mut ps, "head.bn", width, arch.bn, Act::Relu)?,
        );
        let classifier_w = ps.linear("classifier.weight".into(), arch.classes, width)?;
        let classifier_b = ps.constant("classifier.bias".into(), arch.classes, 0.0, true)?;
        let params = ps.entries;
        Ok(Self { arch: arch.clone(), stem, blocks, head, classifier_w, classifier_b, params, frozen_blocks: None })
    }

    /// Fine-tuning: the stem and blocks `0..n` become a fixed feature extractor in training:
    /// batch norm there uses (and keeps) its running statistics, as timm's `freeze` does, and
    /// no gradient flows below block `n`, which also spares their backward pass. The optimiser
    /// must skip the same tensors ([`MixNet::is_frozen_name`]).
    pub fn freeze_until(&mut self, n: usize) -> Result<()> {
        if n > self.blocks.len() {
            candle_core::bail!("freeze_until {n}: the network has {} blocks", self.blocks.len())
        }
        self.frozen_blocks = Some(n);
        Ok(())
    }

    /// Whether the tensor `name` belongs to the stem or one of blocks `0..n`.
    pub fn is_frozen_name(name: &str, n: usize) -> bool {
        if name.starts_with("stem.") {
            return true;
        }
        let block = name.strip_prefix("blocks.").and_then(|r| r.split('.').next()).and_then(|i| i.parse().ok());
        block.is_some_and(|i: usize| i < n)
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Every batch norm of the model, in forward order.
    pub(crate) fn batch_norms(&self) -> impl Iterator<Item = &BatchNorm> {
        let blocks = self.blocks.iter().flat_map(Layer::batch_norms);
        std::iter::once(&self.stem.1).chain(blocks).chain([&self.head.1])
    }

    /// Every tensor of the model (parameters and BN running statistics), in construction order.
    pub fn named(&self) -> &[Named] {
        &self.params
    }

    /// Every tensor of the model (parameters and BN running statistics) with its name, as
    /// [`MixNet::state`] saves them.
    pub fn tensors(&self) -> Vec<(String, Var)> {
        self.params.iter().map(|n| (n.name.clone(), n.var.clone())).collect()
    }

    /// The trainable parameters with their names.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.params.iter().filter(|n| n.trainable).map(|n| (n.name.clone(), n.var.clone())).collect()
    }

    /// Number of trainable scalars (equals `space::cost(..).total.params`).
    pub fn param_count(&self) -> usize {
        self.params.iter().filter(|n| n.trainable).map(|n| n.var.elem_count()).sum()
    }

    /// Features before the classifier: `[N, head width]`.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.features_recording(x, train, &mut Activations::default())
    }

    /// [`MixNet::features`], handing every activation's output to `acts`.
    pub fn features_recording(&self, x: &Tensor, train: bool, acts: &mut Activations) -> Result<Tensor> {
        // Stage 0 is the stem, stage i + 1 block i; stages up to `frozen` run in eval mode.
        let frozen = self.frozen_blocks.filter(|_| train);
        let live = |stage: usize| train && frozen.is_none_or(|n| stage > n);
        let mut h = self.stem.1.forward(&self.stem.0.forward(x)?, live(0), acts)?;
        for (i, b) in self.blocks.iter().enumerate() {
            if frozen == Some(i) {
                h = h.detach();
            }
            h = b.forward(&h, live(i + 1), acts)?;
        }
        if frozen == Some(self.blocks.len()) {
            h = h.detach();
        }
        h = self.head.1.forward(&self.head.0.forward(&h)?, train, acts)?;
        kernels::channel_mean(&h)
    }

    /// Re-estimates every batch norm's running statistics as the mean of its batch statistics
    /// over `batches` (train-mode forwards; weights unchanged), as Once-for-All and BigNAS do
    /// for a supernet's subnet, whose shared statistics fit no single path. Returns the number
    /// of batches; none is an error.
    pub fn recalibrate_batch_norms(&self, batches: impl IntoIterator<Item = Tensor>) -> Result<usize> {
        let bns: Vec<&BatchNorm> = self.batch_norms().collect();
        let stats = |bn: &BatchNorm| -> Result<[Tensor; 2]> {
            Ok([bn.running_mean.as_tensor().copy()?, bn.running_var.as_tensor().copy()?])
        };
        let mut sums: Vec<[Tensor; 2]> =
            bns.iter().map(|bn| Ok(stats(bn)?.map(|t| t.zeros_like().expect("cpu")))).collect::<Result<_>>()?;
        let mut n = 0usize;
        for x in batches {
            let before: Vec<[Tensor; 2]> = bns.iter().map(|bn| stats(bn)).collect::<Result<_>>()?;
            crate::on_pool(|| self.features(&x, true))?;
            // The running update is `new = (1 - m) old + m batch`, so the batch's own statistic
            // is `(new - (1 - m) old) / m`.
            for ((bn, old), sum) in bns.iter().zip(&before).zip(&mut sums) {
                let m = bn.momentum;
                for (k, now) in stats(bn)?.iter().enumerate() {
                    let batch = ((now - (&old[k] * (1.0 - m))?)? / m)?;
                    sum[k] = (&sum[k] + batch)?;
                }
            }
            n += 1;
        }
        if n == 0 {
            candle_core::bail!("batch norm recalibration: no batches")
        }
        for (bn, [mean, var]) in bns.iter().zip(sums) {
            bn.running_mean.set(&(mean / n as f64)?)?;
            bn.running_var.set(&(var / n as f64)?)?;
        }
        Ok(n)
    }

    /// The network frozen for inference with its current weights: batch norm folded once, SE
    /// folded into the project conv, fused kernels, reused buffers. This is the one inference
    /// path: `nas infer`, `nas eval`, test and validation accuracy, and latency measurement all
    /// run it, so what is timed is what is served and scored. Rebuild it after the weights
    /// change.
    pub fn eval_net(&self) -> Result<EvalNet> {
        EvalNet::new(self)
    }

    /// Eval-mode logits through the training ops (BN as a separate affine, SE as its own pass),
    /// differentiable: the reference [`EvalNet`] is tested against, and what a score needing
    /// gradients of an eval-mode forward (SynFlow) runs. Not for serving: use
    /// [`MixNet::eval_net`].
    pub fn forward_eval_unfused(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(&self.features(x, false)?)
    }

    /// Train-mode logits: batch statistics (running ones updated) and dropout drawn from `rng`,
    /// so a seeded run is reproducible.
    pub fn forward_train(&self, x: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
        let f = self.features(x, true)?;
        let p = self.arch.dropout;
        let f = if p > 0.0 {
            let keep = 1.0 - p;
            let mask: Vec<f32> =
                (0..f.elem_count()).map(|_| if rng.gen::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect();
            let mask = Tensor::from_vec(mask, f.shape(), f.device())?;
            (f * mask)?
        } else {
            f
        };
        self.classify(&f)
    }

    fn classify(&self, f: &Tensor) -> Result<Tensor> {
        f.matmul(&self.classifier_w.as_tensor().t()?)?.broadcast_add(self.classifier_b.as_tensor())
    }

    /// Loads named tensors (a checkpoint, or converted timm weights): every tensor of the model
    /// must be present with its exact shape; the first mismatch names the tensor.
    pub fn load_named(&self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        let expected: Vec<_> = self.params.iter().map(|n| (n.name.clone(), n.var.dims().to_vec())).collect();
        crate::checkpoint::check_shapes(&expected, tensors)?;
        for n in &self.params {
            params::assign(&n.var, &tensors[&n.name], &n.name)?;
        }
        Ok(())
    }

    /// All tensors by name, for saving.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params.iter().map(|n| (n.name.clone(), n.var.as_tensor().to_dtype(DType::F32).expect("f32"))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use testkit::float::rel_diff;

    #[test]
    fn frozen_names_are_the_stem_and_the_first_blocks() {
        let frozen = |name| MixNet::is_frozen_name(name, 2);
        assert!(frozen("stem.bn.running_mean") && frozen("blocks.0.dw.0.weight") && frozen("blocks.1.se.reduce.bias"));
        assert!(!frozen("blocks.2.bn1.weight") && !frozen("blocks.10.expand.0.weight"));
        assert!(!frozen("head.conv.0.weight") && !frozen("classifier.weight"));
        assert!(MixNet::new(&space::presets::mixnet_s(), 0, &Device::Cpu).unwrap().freeze_until(17).is_err());
    }

    #[test]
    fn parameter_count_matches_the_cost_model() -> Result<()> {
        for name in ["mixnet-s", "mnasnet-a1"] {
            let arch = space::presets::by_name(name).unwrap();
            let net = MixNet::new(&arch, 0, &Device::Cpu)?;
            assert_eq!(net.param_count() as u64, space::cost(&arch, 224).total.params, "{name}");
        }
        Ok(())
    }

    /// Random BN statistics and affine parameters, so folding them is actually exercised.
    fn randomise_batch_norms(net: &MixNet, seed: u64) -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for n in net.named().iter().filter(|n| n.name.contains("bn.") || n.name.contains(".bn")) {
            let lo = if n.name.ends_with("running_var") || n.name.ends_with("weight") { 0.5 } else { -0.5 };
            let v: Vec<f32> = (0..n.var.elem_count()).map(|_| rng.gen_range(lo..lo + 1.0)).collect();
            n.var.set(&Tensor::from_vec(v, n.var.shape(), &Device::Cpu)?)?;
        }
        Ok(())
    }

    #[test]
    fn eval_net_matches_the_unfused_eval_forward() -> Result<()> {
        for (name, res, batch) in [("mixnet_s", 64, 1), ("tf_mixnet_s", 57, 3), ("mixnet_m", 35, 2)] {
            let mut arch = space::presets::timm_model(name).unwrap();
            arch.classes = 10;
            let net = MixNet::new(&arch, 3, &Device::Cpu)?;
            randomise_batch_norms(&net, 4)?;
            let x = Tensor::randn(0f32, 1., (batch, 3, res, res), &Device::Cpu)?;
            let want = net.forward_eval_unfused(&x)?;
            let eval = net.eval_net()?;
            for run in 0..2 {
                let d = rel_diff(&eval.forward(&x)?, &want)?;
                assert!(d < 1e-4, "{name} {res}px batch {batch} run {run}: relative difference {d}");
            }
        }
        Ok(())
    }

    /// What is served against the training ops at the size it is served at: 224 px, ImageNet's
    /// 1000 classes, on each of MixNet-S, M and L (random weights, random BN statistics so the
    /// fold matters). Batch 1, as `nas infer` and the latency tables run it.
    #[test]
    fn eval_net_matches_the_unfused_forward_at_224px_on_mixnet_s_m_l() -> Result<()> {
        for name in ["mixnet_s", "mixnet_m", "mixnet_l"] {
            let net = MixNet::new(&space::presets::timm_model(name).unwrap(), 7, &Device::Cpu)?;
            randomise_batch_norms(&net, 8)?;
            let x = Tensor::randn(0f32, 1., (1, 3, 224, 224), &Device::Cpu)?;
            let want = net.forward_eval_unfused(&x)?;
            let got = net.eval_net()?.forward(&x)?;
            let diff = testkit::float::max_abs_diff(&got, &want);
            let scale = testkit::float::max_abs_diff(&want, &want.zeros_like()?);
            eprintln!("{name} 224px: EvalNet vs unfused max abs logit difference {diff:e} (logits up to {scale:.3})");
            assert!(scale > 0.1, "{name}: logits up to {scale}, too small to compare");
            assert!(diff as f64 <= 1e-4 * scale as f64, "{name}: max abs difference {diff:e}, logits up to {scale}");
        }
        Ok(())
    }

    /// NAS-Bench-Macro's networks: plain strided 1x1 conv layers, no stride adaptation at 32 px.
    #[test]
    fn nas_bench_macro_networks_count_fold_and_keep_their_strides() -> Result<()> {
        for code in ["00000000", "12012021", "22212202"] {
            let arch = space::family::nas_bench_macro(code).unwrap();
            assert_eq!(adapt_for_resolution(&arch, 32), arch);
            let net = MixNet::new(&arch, 5, &Device::Cpu)?;
            assert_eq!(net.param_count() as u64, space::cost(&arch, 32).total.params, "{code}");
            randomise_batch_norms(&net, 6)?;
            let x = Tensor::randn(0f32, 1., (2, 3, 32, 32), &Device::Cpu)?;
            let want = net.forward_eval_unfused(&x)?;
            let d = rel_diff(&net.eval_net()?.forward(&x)?, &want)?;
            assert!(d < 1e-4, "{code}: relative difference {d}");
        }
        Ok(())
    }

    /// Recalibrated statistics are the mean of each batch's own: two batches together give the
    /// mean of what each gives alone (whatever the running statistics were before).
    #[test]
    fn recalibrated_batch_norm_statistics_average_the_batches() -> Result<()> {
        let net = MixNet::new(&space::family::nas_bench_macro("12012021").unwrap(), 5, &Device::Cpu)?;
        let [a, b] = [1u64, 2].map(|s| testkit::tensor::rand(&[8, 3, 32, 32], s, DType::F32).unwrap());
        let stats = |batches: Vec<Tensor>| -> Result<Vec<Vec<f32>>> {
            randomise_batch_norms(&net, 9)?;
            assert_eq!(net.recalibrate_batch_norms(batches.clone())?, batches.len());
            let keep = |n: &&Named| n.name.ends_with("running_mean") || n.name.ends_with("running_var");
            net.named().iter().filter(keep).map(|n| n.var.as_tensor().to_vec1()).collect()
        };
        let (sa, sb, both) = (stats(vec![a.clone()])?, stats(vec![b.clone()])?, stats(vec![a, b])?);
        for ((x, y), z) in sa.iter().flatten().zip(sb.iter().flatten()).zip(both.iter().flatten()) {
            assert!(((x + y) / 2.0 - z).abs() <= 1e-4 * (1.0 + z.abs()), "{x} {y} -> {z}");
        }
        assert!(sa.iter().flatten().zip(sb.iter().flatten()).any(|(x, y)| x != y));
        assert!(net.recalibrate_batch_norms(Vec::new()).unwrap_err().to_string().contains("no batches"));
        Ok(())
    }

    #[test]
    fn eval_net_refuses_the_wrong_channel_count() -> Result<()> {
        let net = MixNet::new(&space::presets::mixnet_s(), 0, &Device::Cpu)?;
        let err = net.eval_net()?.forward(&Tensor::zeros((1, 4, 32, 32), DType::F32, &Device::Cpu)?).unwrap_err();
        assert!(err.to_string().contains("input has 4 channels, the network takes 3"), "{err}");
        Ok(())
    }

    #[test]
    fn proxy_adaptation_keeps_small_inputs_spatial() -> Result<()> {
        let mut arch = space::presets::mixnet_s();
        arch.classes = 10;
        let arch = adapt_for_resolution(&arch, 32);
        let net = MixNet::new(&arch, 1, &Device::Cpu)?;
        let x = Tensor::randn(0f32, 1., (2, 3, 32, 32), &Device::Cpu)?;
        assert_eq!(net.eval_net()?.forward(&x)?.dims(), &[2, 10]);
        assert_eq!(space::cost(&arch, 32).blocks.last().unwrap().resolution_out, 4);
        Ok(())
    }
}
