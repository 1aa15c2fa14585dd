//! The reference networks as block tables, one row per line. A preset's row has one option per
//! field, so [`Row::blocks`] at the default [`Pick`] expands it, as the search space decodes.
//! `configs/<name>.json` holds the same architectures; `tests/configs.rs` keeps them identical.

use crate::arch::{Activation, Arch, BatchNorm, Head, Padding, Stem};
use crate::scale::round_filters;
use crate::table::{Base, Pick, Row};

/// Names accepted wherever an architecture file is.
pub const PRESETS: &[&str] = &["mixnet-s", "mixnet-m", "mixnet-l", "mobilenetv2", "mnasnet-a1"];

const R: Activation = Activation::Relu;
const SW: Activation = Activation::Swish;

/// A preset's row: one option per field, so its only point is `repeats` layers of one block
/// (the first with `stride` and `in_ch`).
#[allow(clippy::too_many_arguments)]
fn row(
    repeats: usize,
    in_ch: usize,
    out: usize,
    kernels: &[usize],
    expand: usize,
    expand_groups: usize,
    project_groups: usize,
    stride: usize,
    se: Option<f64>,
    act: Activation,
) -> Row {
    Row {
        in_ch,
        out,
        stride,
        kernels: vec![kernels.to_vec()],
        expand: vec![expand],
        expand_groups: vec![expand_groups],
        project_groups: vec![project_groups],
        se: vec![se],
        act: vec![act],
        layers: vec![repeats],
    }
}

#[rustfmt::skip]
fn mixnet_s_rows() -> Vec<Row> {
    vec![
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
    ]
}

#[rustfmt::skip]
fn mixnet_m_rows() -> Vec<Row> {
    vec![
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
    ]
}

/// MobileNetV2 1.0 (t, c, n, s table). ReLU stands in for ReLU6, which the space has no name for.
#[rustfmt::skip]
fn mobilenet_v2_rows() -> Vec<Row> {
    vec![
        row(1,  32,  16, &[3], 1, 1, 1, 1, None, R),
        row(2,  16,  24, &[3], 6, 1, 1, 2, None, R),
        row(3,  24,  32, &[3], 6, 1, 1, 2, None, R),
        row(4,  32,  64, &[3], 6, 1, 1, 2, None, R),
        row(3,  64,  96, &[3], 6, 1, 1, 1, None, R),
        row(3,  96, 160, &[3], 6, 1, 1, 2, None, R),
        row(1, 160, 320, &[3], 6, 1, 1, 1, None, R),
    ]
}

/// MnasNet-A1 (TF `mnasnet_models.py`); its first block is `noskip`.
#[rustfmt::skip]
fn mnasnet_a1_rows() -> Vec<Row> {
    vec![
        row(1,  32,  16, &[3], 1, 1, 1, 1, None,       R),
        row(2,  16,  24, &[3], 6, 1, 1, 2, None,       R),
        row(3,  24,  40, &[5], 3, 1, 1, 2, Some(0.25), R),
        row(4,  40,  80, &[3], 6, 1, 1, 2, None,       R),
        row(2,  80, 112, &[3], 6, 1, 1, 1, Some(0.25), R),
        row(3, 112, 160, &[5], 6, 1, 1, 2, Some(0.25), R),
        row(1, 160, 320, &[3], 6, 1, 1, 1, None,       R),
    ]
}

/// The network of `rows` at width `multiplier` (repeats unchanged), each row at its only point.
fn network(name: &str, rows: &[Row], multiplier: f64, head: usize, dropout: f64) -> Arch {
    let blocks: Vec<_> = rows.iter().flat_map(|r| widened(r, multiplier).blocks(&Pick::default())).collect();
    let base = Base {
        stem: Stem { in_ch: 3, out: blocks[0].in_ch, kernel: 3, stride: 2 },
        head: Head { width: head },
        classes: 1000,
        dropout,
        padding: Padding::PytorchSymmetric,
        bn: BatchNorm { eps: 1e-5, momentum: 0.1 },
    };
    base.arch(Some(name.to_string()), blocks)
}

/// The row with `in` and `out` scaled by [`round_filters`].
fn widened(row: &Row, multiplier: f64) -> Row {
    Row { in_ch: round_filters(row.in_ch, multiplier), out: round_filters(row.out, multiplier), ..row.clone() }
}

/// MixNet-S as in timm `mixnet_s` (symmetric padding, BN eps 1e-5, momentum 0.1).
pub fn mixnet_s() -> Arch {
    network("mixnet-s", &mixnet_s_rows(), 1.0, 1536, 0.2)
}

pub fn mixnet_m() -> Arch {
    network("mixnet-m", &mixnet_m_rows(), 1.0, 1536, 0.25)
}

/// MixNet-L = MixNet-M at width x1.3; the head stays 1536.
pub fn mixnet_l() -> Arch {
    network("mixnet-l", &mixnet_m_rows(), 1.3, 1536, 0.25)
}

pub fn mobilenetv2() -> Arch {
    network("mobilenetv2", &mobilenet_v2_rows(), 1.0, 1280, 0.2)
}

/// MobileNetV2 at width `multiplier` (torchvision `mobilenet_v2(width_mult=...)`): every
/// width rounded by [`round_filters`], the 1280 head kept below 1.0 as the paper does.
/// `nas experiment` trains these as the base of the MixConv paper's ablations.
pub fn mobilenetv2_width(multiplier: f64) -> Arch {
    let head = round_filters(1280, multiplier.max(1.0));
    let mut arch = network("mobilenetv2", &mobilenet_v2_rows(), multiplier, head, 0.2);
    if multiplier != 1.0 {
        arch.name = Some(format!("mobilenetv2-{multiplier}"));
    }
    arch
}

pub fn mnasnet_a1() -> Arch {
    let mut arch = network("mnasnet-a1", &mnasnet_a1_rows(), 1.0, 1280, 0.2);
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
    fn widening_mixnet_m_by_1_3_gives_mixnet_l_and_half_width_stays_valid() {
        let widened = mixnet_m().widened(1.3);
        assert_eq!(
            (&widened.stem, &widened.blocks, &widened.head),
            (&mixnet_l().stem, &mixnet_l().blocks, &mixnet_l().head)
        );
        assert_eq!(widened.name.as_deref(), Some("mixnet-m-x1.3"));
        assert_eq!(mixnet_s().widened(1.0), mixnet_s());
        let half = mixnet_s().widened(0.5);
        crate::validate::validate(&half).unwrap();
        assert_eq!(half.stem.out, 8);
        // Pointwise convs shrink 4x, depthwise ones 2x, the kept head's input 2x.
        let (full, halved) = (crate::cost(&mixnet_s(), 224).total, crate::cost(&half, 224).total);
        assert!(halved.macs * 2 < full.macs, "half width: {} of {} MACs", halved.macs, full.macs);
        assert!(halved.macs * 4 > full.macs, "half width: {} of {} MACs", halved.macs, full.macs);
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
