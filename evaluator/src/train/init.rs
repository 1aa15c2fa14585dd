//! Starting weights for fine-tuning (`nas train --init`): a mixnas checkpoint directory or a
//! timm-format `.safetensors`. Everything but the classifier must fit the architecture exactly;
//! a classifier for another class count is re-created with zeros (the new head): as in Big
//! Transfer (Kolesnikov et al. 2020), so the first steps start from uniform predictions instead
//! of sending large random gradients into the pretrained features.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Error, Result, Tensor};

use crate::model::{params, MixNet};

const CLASSIFIER: [&str; 2] = ["classifier.weight", "classifier.bias"];

/// Tensors of `source` under mixnas names; `arch` gives the timm naming of a `.safetensors`.
fn read_source(source: &Path, arch: &space::Arch) -> Result<HashMap<String, Tensor>> {
    if source.is_dir() {
        let path = source.join("model.safetensors");
        let mut t = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
        // Optimiser buffers and an EMA run's training weights live under `optim/` and `raw/`.
        t.retain(|k, _| !k.contains('/'));
        Ok(t)
    } else {
        crate::timm::load_timm(source, arch)
    }
}

/// Loads the starting weights from `source` into `net`. Returns whether the classifier was
/// re-created because the class counts differ. A tensor that is missing or of another shape
/// is refused with one line naming it (another architecture's weights never half-load).
pub fn init_from(net: &MixNet, source: &Path) -> Result<bool> {
    let found = read_source(source, net.arch()).map_err(|e| Error::Msg(format!("--init {}: {e}", source.display())))?;
    let mut new_head = false;
    for n in net.named() {
        let head = CLASSIFIER.contains(&n.name.as_str());
        match found.get(&n.name) {
            Some(t) if t.dims() == n.var.dims() => {}
            Some(t) if head && t.dims()[0] != n.var.dims()[0] => new_head = true,
            Some(t) => candle_core::bail!(
                "--init {}: tensor `{}` has shape {:?}, this architecture expects {:?} (weights of another architecture?)",
                source.display(),
                n.name,
                t.dims(),
                n.var.dims()
            ),
            None => candle_core::bail!(
                "--init {}: tensor `{}` is missing (weights of another architecture?)",
                source.display(),
                n.name
            ),
        }
    }
    if let Some(extra) = found.keys().filter(|k| !net.named().iter().any(|n| &n.name == *k)).min() {
        candle_core::bail!(
            "--init {}: tensor `{extra}` has no place in this architecture (weights of another architecture?)",
            source.display()
        );
    }
    for n in net.named() {
        if new_head && CLASSIFIER.contains(&n.name.as_str()) {
            n.var.set(&n.var.zeros_like()?)?;
        } else {
            params::assign(&n.var, &found[&n.name], &n.name)?;
        }
    }
    Ok(new_head)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::data::{load, DataSource, LoadOptions, Loader, LoaderConfig, Normalize};
    use crate::train::trainer::{progress_bar, TrainConfig, Trainer};
    use testkit::float::max_abs_diff;
    use testkit::shared;

    /// One batch of 30 CIFAR-10 training images, 3 per class (native 32 px, no augmentation), and
    /// timm's MixNet-S weights from the shared fixtures; `None` where (see `testkit::require`)
    /// they are absent. One fixed batch keeps the falling loss free of batch-to-batch noise.
    fn cifar_and_timm_weights() -> Option<(Loader, PathBuf)> {
        let weights = shared::shared_path("fixtures/timm/mixnet_s.weights.safetensors")?;
        let opts = LoadOptions { train_per_class: Some(3), test_per_class: Some(1), seed: 0, image_size: None };
        let train = load(&DataSource::Path(shared::cifar10_jpg()?), &opts).unwrap().train;
        let norm = Normalize::from_dataset(&train);
        let cfg = LoaderConfig { batch_size: 30, seed: 1, ..Default::default() };
        Some((Loader::new(train, norm, cfg), weights))
    }

    fn fine_tune_config(weights: PathBuf, epochs: usize) -> TrainConfig {
        // A tenth of the rate for the pretrained part, as fine-tuning recipes do.
        TrainConfig { init: Some(weights), backbone_lr_scale: Some(0.1), ..TrainConfig::one_cycle(epochs, 30, 0.03, 0) }
    }

    #[test]
    fn fine_tuning_timm_mixnet_s_on_cifar10_starts_from_its_weights_and_learns() -> Result<()> {
        let Some((loader, weights)) = cifar_and_timm_weights() else { return Ok(()) };
        let arch = space::presets::timm_model("mixnet_s").unwrap();
        let mut trainer = Trainer::new(&arch, fine_tune_config(weights.clone(), 10), loader, None)?;
        let imported = crate::timm::load_timm(&weights, trainer.net.arch())?;
        assert_eq!(imported["classifier.weight"].dims(), [1000, 1536], "the fixture is an ImageNet head");
        for n in trainer.net.named() {
            if CLASSIFIER.contains(&n.name.as_str()) {
                assert_eq!(n.var.dims()[0], 10, "{}: the new head has 10 outputs", n.name);
                assert_eq!(n.var.as_tensor().abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?, 0.0, "zero head");
            } else {
                assert_eq!(max_abs_diff(n.var.as_tensor(), &imported[&n.name]), 0.0, "{} at step 0", n.name);
            }
        }
        let bar = progress_bar(true);
        let losses: Vec<f64> = (0..10).map(|_| trainer.run_epoch(&bar).unwrap().unwrap().train_loss).collect();
        // Measured 2.303 -> 1.823; a zero head starts at ln 10 = 2.303.
        assert!((losses[0] - 10f64.ln()).abs() < 0.01, "{losses:?}");
        assert!(losses[9] < 0.88 * losses[0], "the loss falls over 10 steps: {losses:?}");
        Ok(())
    }

    #[test]
    fn frozen_blocks_keep_their_weights_and_statistics_while_the_rest_trains() -> Result<()> {
        let Some((loader, weights)) = cifar_and_timm_weights() else { return Ok(()) };
        let arch = space::presets::timm_model("mixnet_s").unwrap();
        // Two steps: the zero head passes no gradient back on the first.
        let cfg = TrainConfig { freeze_until: Some(8), ..fine_tune_config(weights, 2) };
        let mut trainer = Trainer::new(&arch, cfg, loader, None)?;
        let before: HashMap<String, Tensor> =
            trainer.net.named().iter().map(|n| (n.name.clone(), n.var.as_tensor().copy().unwrap())).collect();
        for _ in 0..2 {
            trainer.run_epoch(&progress_bar(true))?.unwrap();
        }
        let now = |name: &str| trainer.net.named().iter().find(|n| n.name == name).unwrap().var.as_tensor().clone();
        let changed = |name: &str| max_abs_diff(&before[name], &now(name)) > 0.0;
        let frozen: Vec<&str> =
            before.keys().map(String::as_str).filter(|name| MixNet::is_frozen_name(name, 8)).collect();
        assert!(frozen.contains(&"stem.conv.weight") && frozen.contains(&"blocks.7.bn3.running_var"));
        for name in frozen {
            assert!(!changed(name), "{name} is frozen");
        }
        for name in ["blocks.8.dw.0.weight", "blocks.8.bn2.running_mean", "head.conv.0.weight", "classifier.weight"] {
            assert!(changed(name), "{name} trains");
        }
        Ok(())
    }
}
