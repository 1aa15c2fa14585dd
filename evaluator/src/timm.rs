//! timm MixNet weights (`.safetensors` with timm's names and layouts): [`name_map`] pairs every
//! mixnas tensor name with timm's, for the import here and the export to timm. Blocks are
//! numbered `blocks.{stage}.{index}` by `space::timm::stage_positions`, which reproduces timm's
//! numbering for MixNet-S/M/L.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Result, Tensor};
use space::Arch;

/// timm's prefix for each mixnas block index.
fn timm_block_prefixes(arch: &Arch) -> Vec<String> {
    space::timm::stage_positions(arch).into_iter().map(|(stage, index)| format!("blocks.{stage}.{index}")).collect()
}

/// timm name of a grouped conv's weight: `conv.weight` for one group, `conv.{g}.weight` else.
fn grouped(prefix: &str, conv: &str, groups: usize) -> Vec<String> {
    match groups {
        1 => vec![format!("{prefix}.{conv}.weight")],
        n => (0..n).map(|g| format!("{prefix}.{conv}.{g}.weight")).collect(),
    }
}

const BN_FIELDS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// (mixnas name, timm name) for every tensor of `arch`.
pub fn name_map(arch: &Arch) -> Vec<(String, String)> {
    let mut map = vec![("stem.conv.weight".to_string(), "conv_stem.weight".to_string())];
    let bn = |map: &mut Vec<(String, String)>, ours: &str, theirs: &str| {
        for f in BN_FIELDS {
            map.push((format!("{ours}.{f}"), format!("{theirs}.{f}")));
        }
    };
    bn(&mut map, "stem.bn", "bn1");
    for (i, (b, t)) in arch.blocks.iter().zip(timm_block_prefixes(arch)).enumerate() {
        let p = format!("blocks.{i}");
        let mut conv = |ours: &str, theirs: &str, groups: usize| {
            for (g, name) in grouped(&t, theirs, groups).into_iter().enumerate() {
                map.push((format!("{p}.{ours}.{g}.weight"), name));
            }
        };
        // timm's depthwise-separable block (expand 1) numbers its BNs bn1, bn2; the inverted
        // residual block bn1 (expand), bn2 (dw), bn3 (project).
        let (dw_bn, proj_bn, proj_conv) =
            if b.has_expansion() { ("bn2", "bn3", "conv_pwl") } else { ("bn1", "bn2", "conv_pw") };
        if b.has_expansion() {
            conv("expand", "conv_pw", b.expand_groups);
        }
        conv("dw", "conv_dw", b.kernels.len());
        conv("project", proj_conv, b.project_groups);
        if b.has_expansion() {
            bn(&mut map, &format!("{p}.bn1"), &format!("{t}.bn1"));
        }
        bn(&mut map, &format!("{p}.bn2"), &format!("{t}.{dw_bn}"));
        bn(&mut map, &format!("{p}.bn3"), &format!("{t}.{proj_bn}"));
        if b.se.is_some() {
            for (ours, theirs) in [("reduce", "conv_reduce"), ("expand", "conv_expand")] {
                for f in ["weight", "bias"] {
                    map.push((format!("{p}.se.{ours}.{f}"), format!("{t}.se.{theirs}.{f}")));
                }
            }
        }
    }
    map.push(("head.conv.0.weight".into(), "conv_head.weight".into()));
    bn(&mut map, "head.bn", "bn2");
    map.push(("classifier.weight".into(), "classifier.weight".into()));
    map.push(("classifier.bias".into(), "classifier.bias".into()));
    map
}

/// Reads a timm state dict and renames it to mixnas names. Missing tensors and tensors timm has
/// that the architecture does not are errors naming the tensor.
pub fn load_timm(path: &Path, arch: &Arch) -> Result<HashMap<String, Tensor>> {
    let mut timm = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    timm.remove("num_batches_tracked");
    timm.retain(|k, _| !k.ends_with("num_batches_tracked"));
    let mut out = HashMap::new();
    for (ours, theirs) in name_map(arch) {
        let t = timm.remove(&theirs).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: tensor `{theirs}` is missing (is this the right --model?)",
                path.display()
            ))
        })?;
        out.insert(ours, t);
    }
    if let Some(extra) = timm.keys().min() {
        candle_core::bail!(
            "{}: tensor `{extra}` has no place in this architecture (is this the right --model?)",
            path.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MixNet;
    use testkit::float::max_abs_diff;
    use testkit::shared::{testdata_dir, timm_fixtures};

    fn max_abs_diff_against_timm(dir: &Path, model: &str) -> f32 {
        let arch = space::presets::timm_model(model).unwrap();
        let net = MixNet::new(&arch, 0, &Device::Cpu).unwrap();
        net.load_named(&load_timm(&dir.join(format!("{model}.weights.safetensors")), &arch).unwrap()).unwrap();
        let io = candle_core::safetensors::load(dir.join(format!("{model}.io.safetensors")), &Device::Cpu).unwrap();
        max_abs_diff(&net.eval_net().unwrap().forward(&io["input"]).unwrap(), &io["logits"])
    }

    #[test]
    fn mixnet_s_reproduces_timm_logits() {
        if let Some(dir) = timm_fixtures() {
            let d = max_abs_diff_against_timm(&dir, "mixnet_s");
            eprintln!("mixnet_s: max abs diff {d:e}");
            assert!(d < 1e-3, "max abs diff {d}");
        }
    }

    #[test]
    fn tf_mixnet_s_reproduces_timm_logits() {
        if let Some(dir) = timm_fixtures() {
            let d = max_abs_diff_against_timm(&dir, "tf_mixnet_s");
            eprintln!("tf_mixnet_s: max abs diff {d:e}");
            assert!(d < 1e-3, "max abs diff {d}");
        }
    }

    /// M and L fixtures are not shipped and CI does not make them (they need torch and timm):
    /// `bench/make_timm_fixtures.py --out target/testdata/timm-extra mixnet_m mixnet_l tf_mixnet_m
    /// tf_mixnet_l` writes them, then
    /// `cargo test -p evaluator --lib -- --ignored larger_mixnets`. Each one must be there.
    #[test]
    #[ignore = "needs M/L fixtures from bench/make_timm_fixtures.py (torch + timm)"]
    fn larger_mixnets_reproduce_timm_logits() {
        let dir = testdata_dir().join("timm-extra");
        for model in ["mixnet_m", "mixnet_l", "tf_mixnet_m", "tf_mixnet_l"] {
            let weights = dir.join(format!("{model}.weights.safetensors"));
            assert!(weights.is_file(), "{} is missing (make it with bench/make_timm_fixtures.py)", weights.display());
            let d = max_abs_diff_against_timm(&dir, model);
            eprintln!("{model}: max abs diff {d:e}");
            assert!(d < 1e-3, "{model}: max abs diff {d}");
        }
    }

    #[test]
    fn name_map_covers_every_tensor_once() {
        for name in ["mixnet-s", "mixnet-m", "mixnet-l"] {
            let arch = space::presets::by_name(name).unwrap();
            let net = MixNet::new(&arch, 0, &Device::Cpu).unwrap();
            let map = name_map(&arch);
            assert_eq!(map.len(), net.named().len(), "{name}");
            let theirs: std::collections::HashSet<_> = map.iter().map(|m| &m.1).collect();
            assert_eq!(theirs.len(), map.len(), "{name}: a timm name is used twice");
        }
    }
}
