//! The reference networks as row tables (one row per line, repeats expanded by [`expand`]).
//! `configs/<name>.json` holds the same architectures; a test keeps the two identical.

use crate::arch::{Activation, Arch, BatchNorm, Block, Head, Padding, Partition, Stem, ARCH_FORMAT};
use crate::scale::round_filters;

/// Names accepted wherever an architecture file is.
pub const PRESETS: &[&str] = &["mixnet-s", "mixnet-m", "mixnet-l", "mobilenetv2", "mnasnet-a1"];

/// One row of a block table: `repeats` layers, the first with `stride` and `in_ch`.
struct Row {
    repeats: usize,
    in_ch: usize,
    out: usize,
    kernels: &'static [usize],
    expand: usize,
    expand_groups: usize,
    project_groups: usize,
    stride: usize,
    se: Option<f64>,
    act: Activation,
}

const R: Activation = Activation::Relu;
const SW: Activation = Activation::Swish;

#[allow(clippy::too_many_arguments)]
const fn row(
    repeats: usize,
    in_ch: usize,
    out: usize,
    kernels: &'static [usize],
    expand: usize,
    expand_groups: usize,
    project_groups: usize,
    stride: usize,
    se: Option<f64>,
    act: Activation,
) -> Row {
    Row { repeats, in_ch, out, kernels, expand, expand_groups, project_groups, stride, se, act }
}

#[rustfmt::skip]
const MIXNET_S: &[Row] = &[
    //  r   in   out  kernels            e  ga gp  s  se          act      (resolution at 224)
    row(1,  16,  16, &[3],               1, 1, 1, 1, None,       R),  // 112
    row(1,  16,  24, &[3],               6, 2, 2, 2, None,       R),  // 112 -> 56
    row(1,  24,  24, &[3],               3, 2, 2, 1, None,       R),  // 56
    row(1,  24,  40, &[3, 5, 7],         6, 1, 1, 2, Some(0.5),  SW), // 56 -> 28
    row(3,  40,  40, &[3, 5],            6, 2, 2, 1, Some(0.5),  SW), // 28
    row(1,  40,  80, &[3, 5, 7],         6, 1, 2, 2, Some(0.25), SW), // 28 -> 14
    row(2,  80,  80, &[3, 5],            6, 1, 2, 1, Some(0.25), SW), // 14
    row(1,  80, 120, &[3, 5, 7],         6, 2, 2, 1, Some(0.5),  SW), // 14
    row(2, 120, 120, &[3, 5, 7, 9],      3, 2, 2, 1, Some(0.5),  SW), // 14
    row(1, 120, 200, &[3, 5, 7, 9, 11],  6, 1, 1, 2, Some(0.5),  SW), // 14 -> 7
    row(2, 200, 200, &[3, 5, 7, 9],      6, 1, 2, 1, Some(0.5),  SW), // 7
];

#[rustfmt::skip]
const MIXNET_M: &[Row] = &[
    row(1,  24,  24, &[3],               1, 1, 1, 1, None,       R),  // 112
    row(1,  24,  32, &[3, 5, 7],         6, 2, 2, 2, None,       R),  // 112 -> 56
    row(1,  32,  32, &[3],               3, 2, 2, 1, None,       R),  // 56
    row(1,  32,  40, &[3, 5, 7, 9],      6, 1, 1, 2, Some(0.5),  SW), // 56 -> 28
    row(3,  40,  40, &[3, 5],            6, 2, 2, 1, Some(0.5),  SW), // 28
    row(1,  40,  80, &[3, 5, 7],         6, 1, 1, 2, Some(0.25), SW), // 28 -> 14
    row(3,  80,  80, &[3, 5, 7, 9],      6, 2, 2, 1, Some(0.25), SW), // 14
    row(1,  80, 120, &[3],               6, 1, 1, 1, Some(0.5),  SW), // 14
    row(3, 120, 120, &[3, 5, 7, 9],      3, 2, 2, 1, Some(0.5),  SW), // 14
    row(1, 120, 200, &[3, 5, 7, 9],      6, 1, 1, 2, Some(0.5),  SW), // 14 -> 7
    row(3, 200, 200, &[3, 5, 7, 9],      6, 1, 2, 1, Some(0.5),  SW), // 7
];

/// MobileNetV2 1.0 (t, c, n, s table). ReLU stands in for ReLU6, which the space has no name for.
#[rustfmt::skip]
const MOBILENET_V2: &[Row] = &[
    row(1,  32,  16, &[3], 1, 1, 1, 1, None, R),
    row(2,  16,  24, &[3], 6, 1, 1, 2, None, R),
    row(3,  24,  32, &[3], 6, 1, 1, 2, None, R),
    row(4,  32,  64, &[3], 6, 1, 1, 2, None, R),
    row(3,  64,  96, &[3], 6, 1, 1, 1, None, R),
    row(3,  96, 160, &[3], 6, 1, 1, 2, None, R),
    row(1, 160, 320, &[3], 6, 1, 1, 1, None, R),
];

/// MnasNet-A1 (TF `mnasnet_models.py`); its first block is `noskip`.
#[rustfmt::skip]
const MNASNET_A1: &[Row] = &[
    row(1,  32,  16, &[3], 1, 1, 1, 1, None,       R),
    row(2,  16,  24, &[3], 6, 1, 1, 2, None,       R),
    row(3,  24,  40, &[5], 3, 1, 1, 2, Some(0.25), R),
    row(4,  40,  80, &[3], 6, 1, 1, 2, None,       R),
    row(2,  80, 112, &[3], 6, 1, 1, 1, Some(0.25), R),
    row(3, 112, 160, &[5], 6, 1, 1, 2, Some(0.25), R),
    row(1, 160, 320, &[3], 6, 1, 1, 1, None,       R),
];

/// Expands rows into per-layer blocks, scaling widths by `multiplier` (repeats unchanged).
fn expand(rows: &[Row], multiplier: f64) -> Vec<Block> {
    let mut blocks = Vec::new();
    for r in rows {
        for i in 0..r.repeats {
            let out = round_filters(r.out, multiplier);
            blocks.push(Block {
                in_ch: if i == 0 { round_filters(r.in_ch, multiplier) } else { out },
                out,
                stride: if i == 0 { r.stride } else { 1 },
                expand: r.expand,
                kernels: r.kernels.to_vec(),
                partition: Partition::Equal,
                dilated: false,
                expand_groups: r.expand_groups,
                project_groups: r.project_groups,
                se: r.se,
                act: r.act,
                skip: true,
            });
        }
    }
    blocks
}

fn network(name: &str, rows: &[Row], multiplier: f64, head: usize, dropout: f64) -> Arch {
    let blocks = expand(rows, multiplier);
    Arch {
        format: ARCH_FORMAT.to_string(),
        name: Some(name.to_string()),
        stem: Stem { in_ch: 3, out: blocks[0].in_ch, kernel: 3, stride: 2 },
        blocks,
        head: Head { width: head },
        classes: 1000,
        dropout,
        padding: Padding::PytorchSymmetric,
        bn: BatchNorm { eps: 1e-5, momentum: 0.1 },
        provenance: None,
    }
}

/// MixNet-S as in timm `mixnet_s` (symmetric padding, BN eps 1e-5, momentum 0.1).
pub fn mixnet_s() -> Arch {
    network("mixnet-s", MIXNET_S, 1.0, 1536, 0.2)
}

pub fn mixnet_m() -> Arch {
    network("mixnet-m", MIXNET_M, 1.0, 1536, 0.25)
}

/// MixNet-L = MixNet-M at width x1.3; the head stays 1536.
pub fn mixnet_l() -> Arch {
    network("mixnet-l", MIXNET_M, 1.3, 1536, 0.25)
}

pub fn mobilenetv2() -> Arch {
    network("mobilenetv2", MOBILENET_V2, 1.0, 1280, 0.2)
}

/// MobileNetV2 at width `multiplier` (torchvision `mobilenet_v2(width_mult=...)`): every
/// width rounded by [`round_filters`], the 1280 head kept below 1.0 as the paper does.
/// `nas experiment` trains these as the base of the MixConv paper's ablations.
pub fn mobilenetv2_width(multiplier: f64) -> Arch {
    let head = round_filters(1280, multiplier.max(1.0));
    let mut arch = network("mobilenetv2", MOBILENET_V2, multiplier, head, 0.2);
    if multiplier != 1.0 {
        arch.name = Some(format!("mobilenetv2-{multiplier}"));
    }
    arch
}

pub fn mnasnet_a1() -> Arch {
    let mut arch = network("mnasnet-a1", MNASNET_A1, 1.0, 1280, 0.2);
    arch.blocks[0].skip = false;
    arch
}

/// A preset by name (`mixnet-s`, ...); `None` if the name is not one.
pub fn by_name(name: &str) -> Option<Arch> {
    Some(match name {
        "mixnet-s" => mixnet_s(),
        "mixnet-m" => mixnet_m(),
        "mixnet-l" => mixnet_l(),
        "mobilenetv2" => mobilenetv2(),
        "mnasnet-a1" => mnasnet_a1(),
        _ => return None,
    })
}

/// timm model name -> (preset, padding, BN eps) for weight import.
pub fn timm_model(name: &str) -> Option<Arch> {
    let (base, tf) = match name.strip_prefix("tf_") {
        Some(rest) => (rest, true),
        None => (name, false),
    };
    let mut arch = by_name(&base.replace('_', "-")).filter(|_| base.starts_with("mixnet_"))?;
    if tf {
        arch.padding = Padding::TfSame;
        arch.bn.eps = 1e-3;
        arch.name = Some(format!("tf-{}", arch.name.unwrap_or_default()));
    }
    Some(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_reference_block_counts() {
        assert_eq!(mixnet_s().blocks.len(), 16);
        assert_eq!(mixnet_m().blocks.len(), 19);
        assert_eq!(mixnet_l().blocks.len(), 19);
        assert_eq!(mixnet_l().stem.out, 32);
        assert_eq!(mixnet_l().last_channels(), 264);
    }

    #[test]
    fn presets_match_their_config_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        // MIXNAS_BLESS=1 rewrites the files from the tables (after a deliberate change).
        let bless = std::env::var_os("MIXNAS_BLESS").is_some();
        for name in PRESETS {
            if bless {
                let text = by_name(name).unwrap().to_json() + "\n";
                std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
            }
            let text = std::fs::read_to_string(dir.join(format!("{name}.json")))
                .unwrap_or_else(|e| panic!("configs/{name}.json: {e}"));
            let from_file: Arch = serde_json::from_str(&text).unwrap();
            assert_eq!(from_file, by_name(name).unwrap(), "configs/{name}.json differs from presets.rs");
        }
    }

    #[test]
    fn mobilenetv2_params_match_torchvision_exactly() {
        // torchvision `mobilenet_v2(width_mult=w)`, 1000 classes: sum of parameter numels.
        for (multiplier, params) in [(1.0, 3_504_872), (0.5, 1_968_680), (0.35, 1_677_128)] {
            let arch = mobilenetv2_width(multiplier);
            assert_eq!(crate::cost(&arch, 224).total.params, params, "width {multiplier}");
        }
        assert_eq!(mobilenetv2_width(1.0), mobilenetv2());
        assert_eq!(mobilenetv2_width(0.5).stem.out, 16);
    }

    #[test]
    fn timm_names_pick_conventions() {
        let tf = timm_model("tf_mixnet_m").unwrap();
        assert_eq!((tf.padding, tf.bn.eps), (Padding::TfSame, 1e-3));
        assert_eq!(timm_model("mixnet_l").unwrap().padding, Padding::PytorchSymmetric);
        assert!(timm_model("mobilenetv2").is_none());
        assert!(timm_model("mixnet_xl").is_none());
    }
}
