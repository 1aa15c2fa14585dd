//! Export to timm: a folder with `arch_def.json` (the network as timm's block strings and
//! `EfficientNet` settings, `space::timm`), `model.py` (builds it with timm's own builder) and,
//! for a checkpoint, `model.safetensors` in timm's parameter names (the inverse of the import,
//! through the one [`crate::timm::name_map`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Error, Result, Tensor};
use space::timm::TimmArch;
use space::Arch;

use crate::checkpoint::safetensors_bytes;

/// The `model.py` written beside `arch_def.json`.
pub const MODEL_PY: &str = include_str!("timm_model.py");

/// What goes into the folder.
pub struct TimmExport {
    pub arch: TimmArch,
    /// The served weights in timm's names, for a checkpoint.
    pub weights: Option<Vec<(String, Tensor)>>,
}

/// `tensors` (mixnas names, a checkpoint's served model of `arch`) renamed to timm's, in timm's
/// order. Every tensor must have its timm name and every timm name its tensor.
pub fn timm_tensors(arch: &Arch, tensors: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
    let map = crate::timm::name_map(arch);
    if let Some(extra) = tensors.keys().filter(|k| !map.iter().any(|(ours, _)| ours == *k)).min() {
        candle_core::bail!("tensor `{extra}` has no timm name");
    }
    map.into_iter()
        .map(|(ours, theirs)| {
            let t = tensors.get(&ours).ok_or_else(|| Error::Msg(format!("tensor `{ours}` is missing")))?;
            Ok((theirs, t.clone()))
        })
        .collect()
}

/// Writes the folder `out` whole or not at all: the files go into a sibling folder first, which
/// is then renamed. `out` may not exist yet or be an empty folder.
pub fn write(export: &TimmExport, out: &Path) -> Result<()> {
    let err = |path: &Path, e: &dyn std::fmt::Display| Error::Msg(format!("{}: {e}", path.display()));
    if out.exists() && std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err(err(out, &"exists and is not an empty folder; give a new one"));
    }
    let json = serde_json::to_string_pretty(&export.arch).map_err(Error::wrap)? + "\n";
    let mut files: Vec<(&str, Vec<u8>)> = vec![("arch_def.json", json.into_bytes()), ("model.py", MODEL_PY.into())];
    if let Some(weights) = &export.weights {
        files.push(("model.safetensors", safetensors_bytes(weights, None)?));
    }
    let tmp = sibling(out, "tmp");
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&tmp)?;
        for (name, bytes) in &files {
            std::fs::write(tmp.join(name), bytes)?;
        }
        if out.exists() {
            std::fs::remove_dir(out)?;
        }
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err(out, &e));
    }
    Ok(())
}

/// `DIR/.NAME.{what}-{pid}` beside `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map_or("export".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MixNet;
    use candle_core::Device;

    #[test]
    fn timm_names_are_the_import_inverted() {
        let arch = space::presets::mixnet_s();
        let net = MixNet::new(&arch, 1, &Device::Cpu).unwrap();
        let ours: HashMap<String, Tensor> = net.state().into_iter().collect();
        let theirs = timm_tensors(&arch, &ours).unwrap();
        assert_eq!(theirs.len(), ours.len());
        assert!(theirs.iter().any(|(n, _)| n == "blocks.5.2.conv_dw.3.weight"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timm.safetensors");
        crate::checkpoint::save_tensors(&path, &theirs, None).unwrap();
        let back = crate::timm::load_timm(&path, &arch).unwrap();
        for (name, t) in &ours {
            assert_eq!(testkit::float::max_abs_diff(t, &back[name]), 0.0, "{name}");
        }
        let mut extra = ours.clone();
        extra.insert("blocks.99.dw.0.weight".into(), ours["classifier.bias"].clone());
        let e = timm_tensors(&arch, &extra).unwrap_err().to_string();
        assert!(e.contains("blocks.99.dw.0.weight"), "{e}");
    }

    #[test]
    fn the_folder_is_written_whole_and_never_over_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let arch = space::timm::timm_arch(&space::presets::mixnet_s(), "mixnet-s").unwrap();
        let export = TimmExport { arch, weights: None };
        let out = dir.path().join("out");
        write(&export, &out).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["arch_def.json", "model.py"]);
        let e = write(&export, &out).unwrap_err().to_string();
        assert!(e.contains("not an empty folder"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary folder is left");
    }
}
