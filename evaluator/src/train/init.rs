//! Starting weights for fine-tuning (`nas train --init`): a mixnas checkpoint directory or a
//! timm-format `.safetensors`. Everything but the classifier must fit the architecture exactly;
//! a classifier for another class count is left freshly initialised (the new head).

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
        // Optimiser buffers and EMA shadows live under `optim/` and `ema/`.
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
        if !(new_head && CLASSIFIER.contains(&n.name.as_str())) {
            params::assign(&n.var, &found[&n.name], &n.name)?;
        }
    }
    Ok(new_head)
}
