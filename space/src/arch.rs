//! The architecture model: one `Arch` is a whole MixNet-style network (stem, MBConv blocks with
//! MixConv, head), complete enough to rebuild the network without this tool. It is stored as one
//! self-contained, versioned JSON document (`format`), see `configs/mixnet-s.json`.

use serde::{Deserialize, Serialize};

use crate::scale::{self, Partition};

/// The `format` value this version reads and writes.
pub const ARCH_FORMAT: &str = "mixnas.arch/1";

/// A whole network. Blocks are listed one per layer (repeats expanded), in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Document version, always [`ARCH_FORMAT`].
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub stem: Stem,
    pub blocks: Vec<Block>,
    pub head: Head,
    /// Classifier outputs.
    pub classes: usize,
    /// Dropout before the classifier.
    pub dropout: f64,
    pub padding: Padding,
    pub bn: BatchNorm,
    /// The input side the network is designed for (NAS-Bench-Macro's 32 px), or `null` for an
    /// ImageNet-style network: a network with its own resolution is never stride-adapted for
    /// small inputs, and its costs are counted at it by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// Stem: `kernel` x `kernel` conv from `in` (image channels) to `out`, no bias, BN, ReLU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stem {
    #[serde(rename = "in")]
    pub in_ch: usize,
    pub out: usize,
    pub kernel: usize,
    pub stride: usize,
}

/// Head: 1x1 conv to `width` (no bias), BN, ReLU, global average pool; then dropout and the
/// fully connected classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub width: usize,
}

/// One MBConv layer with a MixConv depthwise stage (reference section 2.1):
/// [grouped 1x1 expand, BN, act] -> MixConv, BN, act -> [SE] -> grouped 1x1 project, BN
/// -> residual add when `skip` and stride 1 and in == out.
///
/// A block with no `kernels` has no depthwise stage: it is one 1x1 conv at the block's stride
/// and a BN, with no activation ([`Block::is_plain_conv`]; NAS-Bench-Macro's downsampling
/// "identity"). It has no expansion, SE or groups, and `act` is unused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    #[serde(rename = "in")]
    pub in_ch: usize,
    pub out: usize,
    pub stride: usize,
    /// Expansion ratio: mid channels = in * expand; 1 means no expansion conv.
    pub expand: usize,
    /// MixConv kernel sizes, one per channel group, in group order (3x3 first).
    pub kernels: Vec<usize>,
    #[serde(default)]
    pub partition: Partition,
    /// Dilated MixConv: at stride 1, each k x k group (k > 3) becomes 3x3 with dilation (k-1)/2.
    #[serde(default)]
    pub dilated: bool,
    /// Groups of the expansion 1x1 conv (no channel shuffle).
    pub expand_groups: usize,
    /// Groups of the projection 1x1 conv (no channel shuffle).
    pub project_groups: usize,
    /// Squeeze-excitation ratio relative to the block's input channels; `null` for none.
    pub se: Option<f64>,
    pub act: Activation,
    /// Whether the residual connection is allowed (it also needs stride 1 and in == out).
    #[serde(default = "yes")]
    pub skip: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Swish,
}

/// How convolutions pad: PyTorch's symmetric `k // 2` (timm `mixnet_*`), or TF SAME, which pads
/// asymmetrically at stride 2 on even inputs (TF and timm `tf_mixnet_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Padding {
    #[serde(rename = "pytorch-symmetric")]
    PytorchSymmetric,
    #[serde(rename = "tf-same")]
    TfSame,
}

/// BatchNorm settings. `momentum` is in PyTorch's convention: the weight of the batch statistic
/// in the running average (TF's decay 0.99 is momentum 0.01).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm {
    pub eps: f64,
    pub momentum: f64,
}

/// Where an architecture came from, when a search found it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// What `score` is: `accuracy`, `score` (ranks only, e.g. a zero-cost score) or `surrogate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The evaluator's number for it (`accuracy` in files written before `metric`).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "accuracy")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// `measured`, `predicted` or `surrogate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_source: Option<String>,
    /// The network timed at the end of the run that found it, beside its prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopwatch: Option<Stopwatch>,
}

/// A fresh measurement of a found network at the search's latency setting (on the machine
/// that ran the search), beside the table's prediction of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stopwatch {
    /// Median and minimum of the timed forwards, and how many there were.
    pub measured_median_ms: f64,
    pub measured_min_ms: f64,
    pub samples: usize,
    pub resolution: usize,
    pub threads: usize,
    /// The table's prediction at the machine's unloaded speed, and scaled to its speed during
    /// the check (`speed_factor` times slower); absent for measured latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_nominal_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_now_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_factor: Option<f64>,
    /// `/proc/loadavg` when it was taken, and the Unix time.
    pub load: String,
    pub unix: u64,
}

impl Stopwatch {
    /// The check in one line: "measured 12.40 ms (median of 10, min 12.10) at 224 px, 1
    /// thread(s); predicted 11.90 ms nominal, 12.60 ms now (speed factor 1.06); load 0.52".
    pub fn describe(&self) -> String {
        let mut s = format!(
            "measured {:.2} ms (median of {}, min {:.2}) at {} px, {} thread(s)",
            self.measured_median_ms, self.samples, self.measured_min_ms, self.resolution, self.threads
        );
        if let (Some(nominal), Some(now), Some(f)) =
            (self.predicted_nominal_ms, self.predicted_now_ms, self.speed_factor)
        {
            s += &format!("; predicted {nominal:.2} ms nominal, {now:.2} ms now (speed factor {f:.2})");
        }
        let load = self.load.split_whitespace().next().unwrap_or("?");
        s + &format!("; load {load}")
    }
}

/// One depthwise group of a MixConv as it is built: channels, kernel size, dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseGroup {
    pub channels: usize,
    pub kernel: usize,
    pub dilation: usize,
}

impl Block {
    /// Channels after the expansion conv.
    pub fn mid(&self) -> usize {
        self.in_ch * self.expand
    }

    pub fn has_expansion(&self) -> bool {
        self.expand != 1
    }

    /// Whether the block is a single strided 1x1 conv + BN (no `kernels`, see [`Block`]).
    pub fn is_plain_conv(&self) -> bool {
        self.kernels.is_empty()
    }

    /// A plain 1x1 conv + BN block from `in_ch` to `out` at `stride`.
    pub fn plain_conv(in_ch: usize, out: usize, stride: usize) -> Block {
        Block {
            in_ch,
            out,
            stride,
            expand: 1,
            kernels: Vec::new(),
            partition: Partition::default(),
            dilated: false,
            expand_groups: 1,
            project_groups: 1,
            se: None,
            act: Activation::Relu,
            skip: true,
        }
    }

    pub fn has_residual(&self) -> bool {
        self.skip && self.stride == 1 && self.in_ch == self.out
    }

    /// SE width, from the block's input channels.
    pub fn se_channels(&self) -> Option<usize> {
        self.se.map(|r| scale::se_channels(self.in_ch, r))
    }

    /// The depthwise groups as built: the channel split of `mid`, and the dilated substitution
    /// (k x k -> 3x3 with dilation (k-1)/2) when `dilated` and stride 1.
    pub fn depthwise_groups(&self) -> Vec<DepthwiseGroup> {
        let split = scale::split_channels(self.mid(), self.kernels.len(), self.partition);
        let dilate = self.dilated && self.stride == 1;
        split
            .into_iter()
            .zip(&self.kernels)
            .map(|(channels, &k)| match dilate && k > 3 {
                true => DepthwiseGroup { channels, kernel: 3, dilation: (k - 1) / 2 },
                false => DepthwiseGroup { channels, kernel: k, dilation: 1 },
            })
            .collect()
    }

    /// (input, output) channel slices of a grouped 1x1 conv, both by the equal split rule.
    pub fn pointwise_splits(cin: usize, cout: usize, groups: usize) -> Vec<(usize, usize)> {
        scale::split_equal(cin, groups).into_iter().zip(scale::split_equal(cout, groups)).collect()
    }
}

impl Arch {
    /// Channels entering the head.
    pub fn last_channels(&self) -> usize {
        self.blocks.last().map_or(self.stem.out, |b| b.out)
    }

    /// The resolution costs and latencies are counted at when none is asked for: the network's
    /// own, else ImageNet's 224.
    pub fn default_resolution(&self) -> usize {
        self.resolution.unwrap_or(224)
    }

    /// Canonical JSON, pretty-printed, as written to files.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an Arch always serialises")
    }

    /// The network at width `multiplier` (timm's `channel_multiplier`): the stem and every
    /// block's input and output widths through [`scale::round_filters`], expansion ratios, SE
    /// ratios, kernels and groups as they were, the head kept (MixNet-L is MixNet-M widened by
    /// 1.3 with its 1536 head). Used to train a cheaper proxy of the same design.
    pub fn widened(&self, multiplier: f64) -> Arch {
        let mut arch = self.clone();
        if multiplier == 1.0 {
            return arch;
        }
        arch.stem.out = scale::round_filters(arch.stem.out, multiplier);
        for b in &mut arch.blocks {
            b.in_ch = scale::round_filters(b.in_ch, multiplier);
            b.out = scale::round_filters(b.out, multiplier);
        }
        if let Some(name) = &arch.name {
            arch.name = Some(format!("{name}-x{multiplier}"));
        }
        arch
    }
}
