//! The MixConv paper's ablations as lists of ordinary architectures: each experiment rewrites
//! the depthwise stage of a base network (MobileNetV2 by default) in every variant it compares.
//! [`journal`] trains and records them, [`plot`] draws them as the paper's figures do.

pub mod journal;
pub mod plot;
pub mod run;

use space::{Arch, Partition};

/// The four studies of the paper (reference sections 3.1-3.3 and Fig. 1, 4, 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Experiment {
    /// One k x k depthwise kernel everywhere (k = 3..13) against MixConv {3x3..kxk}.
    KernelSweep,
    /// Equal against exponential channel partition, MixConv with 2-5 groups.
    Partition,
    /// MixConv against dilated MixConv (3x3 kernels with the same receptive field), 2-5 groups.
    Dilation,
    /// One layer at a time given a 9x9 kernel or MixConv {3,5,7,9}; the rest stay 3x3.
    SingleLayer,
}

impl Experiment {
    pub fn name(self) -> &'static str {
        match self {
            Self::KernelSweep => "kernel-sweep",
            Self::Partition => "partition",
            Self::Dilation => "dilation",
            Self::SingleLayer => "single-layer",
        }
    }

    /// What the x axis of the experiment's plot counts.
    pub fn x_label(self) -> &'static str {
        match self {
            Self::KernelSweep => "kernel size k (k x k, or MixConv {3x3, ..., k x k})",
            Self::Partition | Self::Dilation => "MixConv groups ({3x3, ..., (2g+1)x(2g+1)})",
            Self::SingleLayer => "layer replaced (0: none, all 3x3)",
        }
    }
}

/// One architecture of an experiment and where it sits in the plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Unique, file-name safe: `DIR/variants/<name>.json`.
    pub name: String,
    /// The plot lines it is a point of (the all-3x3 network starts both kernel-sweep lines).
    pub series: Vec<String>,
    /// Kernel size, group count or layer number.
    pub x: usize,
    pub arch: Arch,
}

/// MixConv kernels {3x3, 5x5, ..., k x k}.
pub fn mix_kernels(largest: usize) -> Vec<usize> {
    (3..=largest).step_by(2).collect()
}

/// `base` with every depthwise stage replaced (`layer: None`) or only block `layer`.
fn rewrite(
    base: &Arch,
    name: &str,
    layer: Option<usize>,
    kernels: &[usize],
    partition: Partition,
    dilated: bool,
) -> Arch {
    let mut arch = base.clone();
    let label = base.name.as_deref().unwrap_or("base");
    arch.name = Some(format!("{label} {name}"));
    for (i, b) in arch.blocks.iter_mut().enumerate() {
        if layer.is_none_or(|l| l == i) {
            b.kernels = kernels.to_vec();
            b.partition = partition;
            b.dilated = dilated;
        }
    }
    arch
}

fn variant(base: &Arch, name: String, series: &[&str], x: usize, arch: impl Fn(&Arch, &str) -> Arch) -> Variant {
    let arch = arch(base, &name);
    Variant { name, series: series.iter().map(|s| s.to_string()).collect(), x, arch }
}

/// Every variant of `experiment` on `base`, in plot order.
pub fn variants(experiment: Experiment, base: &Arch) -> Vec<Variant> {
    let eq = Partition::Equal;
    let mut out = Vec::new();
    match experiment {
        Experiment::KernelSweep => {
            for k in mix_kernels(13) {
                let series: &[&str] = if k == 3 { &["single k x k", "MixConv {3..k}"] } else { &["single k x k"] };
                out.push(variant(base, format!("single-k{k}"), series, k, |b, n| rewrite(b, n, None, &[k], eq, false)));
            }
            for k in mix_kernels(13).into_iter().skip(1) {
                let kernels = mix_kernels(k);
                out.push(variant(base, format!("mix-3-{k}"), &["MixConv {3..k}"], k, |b, n| {
                    rewrite(b, n, None, &kernels, eq, false)
                }));
            }
        }
        Experiment::Partition => {
            for (label, partition) in [("equal", eq), ("exponential", Partition::Exponential)] {
                for g in 2..=5 {
                    let kernels = mix_kernels(2 * g + 1);
                    out.push(variant(base, format!("{label}-g{g}"), &[label], g, |b, n| {
                        rewrite(b, n, None, &kernels, partition, false)
                    }));
                }
            }
        }
        Experiment::Dilation => {
            for (label, dilated) in [("MixConv", false), ("dilated MixConv", true)] {
                for g in 2..=5 {
                    let kernels = mix_kernels(2 * g + 1);
                    let name = format!("{}-g{g}", if dilated { "dilated" } else { "mixconv" });
                    out.push(variant(base, name, &[label], g, |b, n| rewrite(b, n, None, &kernels, eq, dilated)));
                }
            }
        }
        Experiment::SingleLayer => {
            out.push(variant(base, "all-k3".into(), &["all 3x3"], 0, |b, n| rewrite(b, n, None, &[3], eq, false)));
            for (label, kernels) in [("9x9 in one layer", vec![9]), ("MixConv {3,5,7,9} in one layer", mix_kernels(9))]
            {
                let short = if kernels.len() == 1 { "k9" } else { "mix-3-9" };
                for layer in 0..base.blocks.len() {
                    let name = format!("layer{:02}-{short}", layer + 1);
                    out.push(variant(base, name, &[label], layer + 1, |b, n| {
                        rewrite(b, n, Some(layer), &kernels, eq, false)
                    }));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Arch {
        space::presets::mobilenetv2_width(0.5)
    }

    #[test]
    fn every_variant_is_a_valid_distinct_architecture() {
        for experiment in
            [Experiment::KernelSweep, Experiment::Partition, Experiment::Dilation, Experiment::SingleLayer]
        {
            let vs = variants(experiment, &base());
            for v in &vs {
                space::validate::validate(&v.arch).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
            }
            let mut names: Vec<_> = vs.iter().map(|v| &v.name).collect();
            names.dedup();
            assert_eq!(names.len(), vs.len(), "{experiment:?}");
            for (i, a) in vs.iter().enumerate() {
                assert!(vs[i + 1..].iter().all(|b| b.arch.blocks != a.arch.blocks), "{} is repeated", a.name);
            }
        }
    }

    #[test]
    fn variants_change_only_the_depthwise_stage_they_study() {
        let b = base();
        let sweep = variants(Experiment::KernelSweep, &b);
        assert_eq!(sweep.len(), 11);
        let mix13 = sweep.iter().find(|v| v.name == "mix-3-13").unwrap();
        assert!(mix13.arch.blocks.iter().all(|x| x.kernels == [3, 5, 7, 9, 11, 13]));
        assert_eq!(mix13.arch.blocks[5].out, b.blocks[5].out);

        let part = variants(Experiment::Partition, &b);
        let exp3 = part.iter().find(|v| v.name == "exponential-g3").unwrap();
        assert!(exp3.arch.blocks.iter().all(|x| x.partition == Partition::Exponential && x.kernels == [3, 5, 7]));

        let single = variants(Experiment::SingleLayer, &b);
        assert_eq!(single.len(), 1 + 2 * b.blocks.len());
        let l4 = single.iter().find(|v| v.name == "layer04-k9").unwrap();
        let changed: Vec<usize> = (0..b.blocks.len()).filter(|&i| l4.arch.blocks[i] != b.blocks[i]).collect();
        assert_eq!((changed, l4.x), (vec![3], 4));
    }

    #[test]
    fn dilated_variants_have_fewer_params_than_real_large_kernels() {
        let dil = variants(Experiment::Dilation, &base());
        let params = |name: &str| space::cost(&dil.iter().find(|v| v.name == name).unwrap().arch, 224).total.params;
        for g in 2..=5 {
            assert!(params(&format!("dilated-g{g}")) < params(&format!("mixconv-g{g}")), "{g} groups");
        }
    }
}
