//! An [`Arch`] in timm's vocabulary: the block strings of `timm.models._efficientnet_builder`
//! (`ir_r1_k3.5.7_a1.1_p1.1_s2_e6_c40_se0.5_nsw`, reference section 2.4), grouped into timm's
//! stages, with the constructor settings of `timm.models.efficientnet.EfficientNet` around
//! them. A network timm's grammar cannot say is refused, naming the block and the field.
//!
//! Stages: a new stage starts at every block that changes width or stride. That reproduces
//! timm's `blocks.{stage}.{index}` numbering for MixNet-S/M/L, keeps every stride at the head of
//! a stage (timm's builder forces the rest of a stage to stride 1), and is how `evaluator`'s
//! timm weight names are numbered.

use serde::{Deserialize, Serialize};

use crate::arch::{Activation, Arch, Block, Padding};
use crate::load::ArchError;
use crate::scale::{self, Partition};

/// The `format` of an `arch_def.json`.
pub const TIMM_FORMAT: &str = "mixnas.timm-arch/1";

/// Everything `EfficientNet(...)` needs to build the network, as `arch_def.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimmArch {
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Block strings, one list per stage, for `decode_arch_def`.
    pub arch_def: Vec<Vec<String>>,
    /// Widths in `arch_def` are the built ones: build with `round_chs_fn` the identity and
    /// `fix_stem=True`.
    pub stem_size: usize,
    pub stem_kernel_size: usize,
    /// timm's `EfficientNet` always builds its stem at stride 2; a stride-1 stem (a network for
    /// small images) is set on `conv_stem` after building.
    pub stem_stride: usize,
    /// Width of the head's 1x1 conv (`num_features`).
    pub num_features: usize,
    pub num_classes: usize,
    pub in_chans: usize,
    /// The model's activation (stem, head, blocks without an `n` option).
    pub act_layer: String,
    /// timm's `pad_type`: `""` symmetric PyTorch padding, `"same"` TF SAME.
    pub pad_type: String,
    pub bn_eps: f64,
    /// PyTorch convention (TF's decay 0.99 is 0.01).
    pub bn_momentum: f64,
    /// Dropout before the classifier.
    pub drop_rate: f64,
    pub drop_path_rate: f64,
    /// What timm's builder counts as the total stride (its count starts at 2 for the stem);
    /// given so that it never turns a stride into a dilation.
    pub output_stride: usize,
    /// (channels, height, width) of the input the network was designed or trained for, when
    /// known (timm's `input_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<[usize; 3]>,
    /// Per-channel normalisation of the training data (timm's `mean`, `std`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// Strides changed from the architecture as designed (training at 64 px or less keeps the
    /// stem and the first stride-2 block at stride 1); already in `arch_def` and `stem_stride`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stride_changes: Vec<StrideChange>,
}

/// One stride that differs from the designed architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrideChange {
    /// `stem` or `blocks[i]`.
    pub at: String,
    pub from: usize,
    pub to: usize,
}

/// timm's (stage, index within the stage) of every block.
pub fn stage_positions(arch: &Arch) -> Vec<(usize, usize)> {
    let (mut stage, mut index) = (0usize, 0usize);
    arch.blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i > 0 && (b.in_ch != b.out || b.stride != 1) {
                stage += 1;
                index = 0;
            } else if i > 0 {
                index += 1;
            }
            (stage, index)
        })
        .collect()
}

/// `arch` in timm's terms; `source` names it in a refusal.
pub fn timm_arch(arch: &Arch, source: &str) -> Result<TimmArch, ArchError> {
    let refuse = |field: String, message: String| ArchError { source: source.to_string(), field, message };
    for (i, b) in arch.blocks.iter().enumerate() {
        expressible(b).map_err(|(field, message)| refuse(format!("blocks[{i}].{field}"), message))?;
    }
    let block_strides: usize = arch.blocks.iter().map(|b| b.stride).product();
    Ok(TimmArch {
        format: TIMM_FORMAT.to_string(),
        name: arch.name.clone(),
        arch_def: block_strings(arch),
        stem_size: arch.stem.out,
        stem_kernel_size: arch.stem.kernel,
        stem_stride: arch.stem.stride,
        num_features: arch.head.width,
        num_classes: arch.classes,
        in_chans: arch.stem.in_ch,
        act_layer: "relu".into(),
        pad_type: match arch.padding {
            Padding::PytorchSymmetric => String::new(),
            Padding::TfSame => "same".into(),
        },
        bn_eps: arch.bn.eps,
        bn_momentum: arch.bn.momentum,
        drop_rate: arch.dropout,
        drop_path_rate: 0.0,
        output_stride: 2 * block_strides,
        input_size: arch.resolution.map(|r| [arch.stem.in_ch, r, r]),
        mean: None,
        std: None,
        stride_changes: Vec::new(),
    })
}

/// The stride changes that turn `designed` into `built` (same blocks, some strides lowered).
pub fn stride_changes(designed: &Arch, built: &Arch) -> Vec<StrideChange> {
    let stem = ("stem".to_string(), designed.stem.stride, built.stem.stride);
    let blocks = designed.blocks.iter().zip(&built.blocks).enumerate();
    std::iter::once(stem)
        .chain(blocks.map(|(i, (d, b))| (format!("blocks[{i}]"), d.stride, b.stride)))
        .filter(|(_, from, to)| from != to)
        .map(|(at, from, to)| StrideChange { at, from, to })
        .collect()
}

/// Why timm's builder would not build `b` as mixnas does: (field, message).
fn expressible(b: &Block) -> Result<(), (&'static str, String)> {
    if b.is_plain_conv() {
        return Err((
            "kernels",
            "a 1x1 conv + BN with no activation (no depthwise stage) has no timm block: `cn` always ends in an activation and the `n` option has no identity".into(),
        ));
    }
    if b.partition != Partition::Equal {
        return Err(("partition", "timm's MixedConv2d splits channels equally only".into()));
    }
    if b.dilated && b.stride == 1 && b.kernels.iter().any(|&k| k > 3) {
        return Err(("dilated", "timm's MixedConv2d has no per-group dilated 3x3 substitution".into()));
    }
    if b.has_expansion() && scale::make_divisible(b.mid() as f64) != b.mid() {
        return Err((
            "expand",
            format!(
                "{} x {} = {} expanded channels, but timm's InvertedResidual rounds them to {} (a multiple of 8)",
                b.in_ch,
                b.expand,
                b.mid(),
                scale::make_divisible(b.mid() as f64)
            ),
        ));
    }
    if let (Some(ratio), Some(ours)) = (b.se, b.se_channels()) {
        let theirs = timm_se_channels(b.mid(), ratio, b.expand);
        if theirs != ours {
            return Err((
                "se",
                format!(
                    "{} x {ratio} gives {ours} SE channels here (floor) but {theirs} in timm (round(mid x ratio / expand))",
                    b.in_ch
                ),
            ));
        }
    }
    Ok(())
}

/// timm's SE width: the builder divides the ratio by the expansion and `SqueezeExcite` rounds
/// `mid * ratio` with Python's `round` (half to even), both in f64 as here.
fn timm_se_channels(mid: usize, ratio: f64, expand: usize) -> usize {
    let v = mid as f64 * (ratio / expand as f64);
    let rounded = v.round();
    let half_to_even = if (v - v.trunc()).abs() == 0.5 && rounded % 2.0 != 0.0 { rounded - 1.0 } else { rounded };
    half_to_even as usize
}

/// The block strings, one list per stage; consecutive identical layers share a string (`r`).
fn block_strings(arch: &Arch) -> Vec<Vec<String>> {
    let mut stages: Vec<Vec<(Block, usize)>> = Vec::new();
    for (b, (stage, index)) in arch.blocks.iter().zip(stage_positions(arch)) {
        if index == 0 {
            debug_assert_eq!(stage, stages.len());
            stages.push(Vec::new());
        }
        let runs = stages.last_mut().expect("a stage was opened");
        match runs.last_mut() {
            Some((first, repeats)) if *b == repeat_of(first) => *repeats += 1,
            _ => runs.push((b.clone(), 1)),
        }
    }
    stages.iter().map(|runs| runs.iter().map(|(b, r)| block_string(b, *r)).collect()).collect()
}

/// What a repeat of `first` is in timm's grammar: input = output, stride 1.
fn repeat_of(first: &Block) -> Block {
    Block { in_ch: first.out, stride: 1, ..first.clone() }
}

/// One block string, fields in the order timm's own MixNet definitions use.
fn block_string(b: &Block, repeats: usize) -> String {
    let dots = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(".");
    let kind = if b.has_expansion() { "ir" } else { "ds" };
    let mut s = format!("{kind}_r{repeats}_k{}", dots(&b.kernels));
    if b.expand_groups > 1 && b.has_expansion() {
        s += &format!("_a{}", dots(&vec![1; b.expand_groups]));
    }
    if b.project_groups > 1 {
        s += &format!("_p{}", dots(&vec![1; b.project_groups]));
    }
    s += &format!("_s{}_e{}_c{}", b.stride, b.expand, b.out);
    if let Some(ratio) = b.se {
        s += &format!("_se{ratio}");
    }
    if b.act == Activation::Swish {
        s += "_nsw";
    }
    if !b.skip {
        s += "_noskip";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    /// timm 1.0.31 `_gen_mixnet_s` and `_gen_mixnet_m` (reference section 2.6).
    #[rustfmt::skip]
    const MIXNET_S: [&[&str]; 6] = [
        &["ds_r1_k3_s1_e1_c16"],
        &["ir_r1_k3_a1.1_p1.1_s2_e6_c24", "ir_r1_k3_a1.1_p1.1_s1_e3_c24"],
        &["ir_r1_k3.5.7_s2_e6_c40_se0.5_nsw", "ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw"],
        &["ir_r1_k3.5.7_p1.1_s2_e6_c80_se0.25_nsw", "ir_r2_k3.5_p1.1_s1_e6_c80_se0.25_nsw"],
        &["ir_r1_k3.5.7_a1.1_p1.1_s1_e6_c120_se0.5_nsw", "ir_r2_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw"],
        &["ir_r1_k3.5.7.9.11_s2_e6_c200_se0.5_nsw", "ir_r2_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw"],
    ];

    #[rustfmt::skip]
    const MIXNET_M: [&[&str]; 6] = [
        &["ds_r1_k3_s1_e1_c24"],
        &["ir_r1_k3.5.7_a1.1_p1.1_s2_e6_c32", "ir_r1_k3_a1.1_p1.1_s1_e3_c32"],
        &["ir_r1_k3.5.7.9_s2_e6_c40_se0.5_nsw", "ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw"],
        &["ir_r1_k3.5.7_s2_e6_c80_se0.25_nsw", "ir_r3_k3.5.7.9_a1.1_p1.1_s1_e6_c80_se0.25_nsw"],
        &["ir_r1_k3_s1_e6_c120_se0.5_nsw", "ir_r3_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw"],
        &["ir_r1_k3.5.7.9_s2_e6_c200_se0.5_nsw", "ir_r3_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw"],
    ];

    fn strings(def: &[&[&str]]) -> Vec<Vec<String>> {
        def.iter().map(|stage| stage.iter().map(|s| s.to_string()).collect()).collect()
    }

    /// timm's `mixnet_l` is `mixnet_m`'s strings with `round_chs_fn` = `round_channels(x1.3)`
    /// applied to every `c`; the export writes the widths built, so `c` is already rounded.
    fn widened_c(def: &[&[&str]], multiplier: f64) -> Vec<Vec<String>> {
        let widen = |s: &str| {
            let fields: Vec<String> = s
                .split('_')
                .map(|f| match f.strip_prefix('c').and_then(|c| c.parse::<usize>().ok()) {
                    Some(c) => format!("c{}", scale::round_filters(c, multiplier)),
                    None => f.to_string(),
                })
                .collect();
            fields.join("_")
        };
        def.iter().map(|stage| stage.iter().map(|s| widen(s)).collect()).collect()
    }

    #[test]
    fn mixnet_s_m_l_block_strings_are_timms_own() {
        let s = timm_arch(&presets::mixnet_s(), "mixnet-s").unwrap();
        assert_eq!(s.arch_def, strings(&MIXNET_S));
        assert_eq!((s.stem_size, s.num_features, s.output_stride, s.pad_type.as_str()), (16, 1536, 32, ""));
        let m = timm_arch(&presets::mixnet_m(), "mixnet-m").unwrap();
        assert_eq!(m.arch_def, strings(&MIXNET_M));
        assert_eq!(m.stem_size, 24);
        let l = timm_arch(&presets::mixnet_l(), "mixnet-l").unwrap();
        assert_eq!(l.arch_def, widened_c(&MIXNET_M, 1.3));
        assert_eq!((l.stem_size, l.num_features), (32, 1536));
        assert_eq!(l.arch_def[5][1], "ir_r3_k3.5.7.9_p1.1_s1_e6_c264_se0.5_nsw");
        let tf = timm_arch(&presets::timm_model("tf_mixnet_s").unwrap(), "tf_mixnet_s").unwrap();
        assert_eq!((tf.pad_type.as_str(), tf.bn_eps), ("same", 1e-3));
    }

    #[test]
    fn mnasnet_keeps_noskip_and_stages_follow_width_and_stride() {
        let a1 = timm_arch(&presets::mnasnet_a1(), "mnasnet-a1").unwrap();
        assert_eq!(a1.arch_def[0], ["ds_r1_k3_s1_e1_c16_noskip"]);
        assert_eq!(a1.arch_def[1], ["ir_r2_k3_s2_e6_c24"]);
        let mut arch = presets::mixnet_s();
        arch.blocks[5].stride = 2; // a stride-2 repeat (40 -> 40) opens its own stage
        let positions = stage_positions(&arch);
        assert_eq!(&positions[3..8], [(2, 0), (2, 1), (3, 0), (3, 1), (4, 0)]);
        let def = timm_arch(&arch, "x").unwrap().arch_def;
        assert_eq!(def[3], ["ir_r2_k3.5_a1.1_p1.1_s2_e6_c40_se0.5_nsw"]);
    }

    #[test]
    fn proxy_strides_are_written_per_block_and_listed() {
        let designed = presets::mixnet_s();
        let mut built = designed.clone();
        built.stem.stride = 1;
        built.blocks[1].stride = 1;
        let t = timm_arch(&built, "x").unwrap();
        assert_eq!(t.arch_def[1][0], "ir_r1_k3_a1.1_p1.1_s1_e6_c24");
        assert_eq!((t.stem_stride, t.output_stride), (1, 16));
        let changes = stride_changes(&designed, &built);
        let at: Vec<(&str, usize, usize)> = changes.iter().map(|c| (c.at.as_str(), c.from, c.to)).collect();
        assert_eq!(at, [("stem", 2, 1), ("blocks[1]", 2, 1)]);
    }

    #[test]
    fn what_timm_cannot_build_is_refused_naming_block_and_field() {
        let refusal = |edit: fn(&mut Arch)| {
            let mut arch = presets::mixnet_s();
            edit(&mut arch);
            timm_arch(&arch, "x.json").unwrap_err().to_string()
        };
        let e = refusal(|a| a.blocks[4].dilated = true);
        assert!(e.starts_with("x.json: blocks[4].dilated: "), "{e}");
        let e = refusal(|a| a.blocks[3].partition = Partition::Exponential);
        assert!(e.starts_with("x.json: blocks[3].partition: "), "{e}");
        // 30 x 0.25 = 7.5: floor 7 here, round-half-even 8 in timm.
        let e = refusal(|a| {
            a.blocks[7].out = 30;
            a.blocks[8] = Block { in_ch: 30, out: 120, expand: 4, se: Some(0.25), ..a.blocks[8].clone() };
        });
        assert!(e.starts_with("x.json: blocks[8].se: 30 x 0.25 gives 7 SE channels here"), "{e}");
        let e = refusal(|a| {
            a.blocks[7].out = 20;
            a.blocks[8] = Block { in_ch: 20, out: 120, expand: 3, se: None, ..a.blocks[8].clone() };
        });
        assert!(e.starts_with("x.json: blocks[8].expand: 20 x 3 = 60 expanded channels"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn nas_bench_macro_exports_its_mbconv_layers_and_refuses_its_plain_convs() {
        let arch = crate::family::nas_bench_macro("12111212").unwrap();
        let t = timm_arch(&arch, "nas-bench-macro:12111212").unwrap();
        assert_eq!(t.arch_def[0], ["ir_r1_k3_s2_e3_c64", "ir_r1_k5_s1_e6_c64"]);
        assert_eq!((t.stem_stride, t.num_classes, t.input_size), (1, 10, Some([3, 32, 32])));
        let arch = crate::family::nas_bench_macro("02111212").unwrap();
        let e = timm_arch(&arch, "nas-bench-macro:02111212").unwrap_err().to_string();
        assert!(
            e.starts_with("nas-bench-macro:02111212: blocks[0].kernels: a 1x1 conv + BN with no activation"),
            "{e}"
        );
    }

    #[test]
    fn every_default_space_network_is_expressible() {
        use rand::SeedableRng;
        let space = crate::SearchSpace::default_space();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let arch = space.decode(&space.sample(&mut rng)).unwrap();
            timm_arch(&arch, "sampled").unwrap();
        }
    }
}
