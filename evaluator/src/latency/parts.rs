//! The parts a latency table is keyed by (stem, each block at its input resolution, head with
//! classifier) and the probe networks that time one part through the real model code.
//!
//! A part is timed as the difference between two small `MixNet`s rather than by calling a layer
//! directly: the probe runs exactly what a whole network runs (same layers, same ops, whatever
//! they become), at the part's input shape. Probe: a 1x1 stride-1 stem from the image to the
//! part's input channels, the part, a 1-wide head and one class; its base is the same without the
//! part. The stem entry keeps its tiny head, a bias that every network has once and the fitted
//! constant absorbs.

use std::fmt;

use space::{Arch, Block, Head, Padding, Stem};

/// One measurable part of a network, with everything its latency depends on.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Stem { res: usize, stem: Stem },
    Block { res: usize, block: Block },
    Head { res: usize, channels: usize, width: usize, classes: usize },
}

/// A part in a network of a given padding convention; BN settings do not change eval cost.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyedPart {
    pub part: Part,
    pub padding: Padding,
}

/// The parts of `arch` at input `resolution`, in forward order.
pub fn parts(arch: &Arch, resolution: usize) -> Vec<KeyedPart> {
    let cost = space::cost(arch, resolution);
    let mut out = vec![Part::Stem { res: resolution, stem: arch.stem.clone() }];
    out.extend(
        arch.blocks.iter().zip(&cost.blocks).map(|(b, c)| Part::Block { res: c.resolution_in, block: b.clone() }),
    );
    let res =
        cost.blocks.last().map_or_else(|| space::scale::conv_out(resolution, arch.stem.stride), |c| c.resolution_out);
    out.push(Part::Head { res, channels: arch.last_channels(), width: arch.head.width, classes: arch.classes });
    out.into_iter().map(|part| KeyedPart { part, padding: arch.padding }).collect()
}

impl KeyedPart {
    /// The table key, e.g. `block r56 c24-40 s2 e6 k3.5.7 equal g1.1 se0.5 swish sym`.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The probe network that contains this part, and its input resolution.
    pub fn probe(&self, template: &Arch) -> (Arch, usize) {
        match &self.part {
            Part::Stem { res, stem } => (probe_arch(template, self.padding, stem.clone(), vec![], 1, 1), *res),
            Part::Block { res, block } => {
                (probe_arch(template, self.padding, point_stem(block.in_ch), vec![block.clone()], 1, 1), *res)
            }
            Part::Head { res, channels, width, classes } => {
                (probe_arch(template, self.padding, point_stem(*channels), vec![], *width, *classes), *res)
            }
        }
    }

    /// The base subtracted from the probe, keyed by [`base_key`]; none for the stem.
    pub fn base(&self, template: &Arch) -> Option<(String, Arch, usize)> {
        let (res, channels) = match &self.part {
            Part::Stem { .. } => return None,
            Part::Block { res, block } => (*res, block.in_ch),
            Part::Head { res, channels, .. } => (*res, *channels),
        };
        let arch = probe_arch(template, self.padding, point_stem(channels), vec![], 1, 1);
        Some((base_key(res, channels, self.padding), arch, res))
    }
}

/// Key of a probe base: a 1x1 stem to `channels` at `res`, a 1-wide head and one class.
pub fn base_key(res: usize, channels: usize, padding: Padding) -> String {
    format!("base r{res} c{channels} {}", pad(padding))
}

fn point_stem(out: usize) -> Stem {
    Stem { in_ch: 3, out, kernel: 1, stride: 1 }
}

fn probe_arch(template: &Arch, padding: Padding, stem: Stem, blocks: Vec<Block>, width: usize, classes: usize) -> Arch {
    Arch {
        name: None,
        stem,
        blocks,
        head: Head { width },
        classes,
        dropout: 0.0,
        padding,
        resolution: None,
        provenance: None,
        ..template.clone()
    }
}

fn pad(p: Padding) -> &'static str {
    match p {
        Padding::PytorchSymmetric => "sym",
        Padding::TfSame => "same",
    }
}

fn list(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(".")
}

impl fmt::Display for KeyedPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = pad(self.padding);
        match &self.part {
            Part::Stem { res, stem: s } => {
                write!(f, "stem r{res} c{}-{} k{} s{} {p}", s.in_ch, s.out, s.kernel, s.stride)
            }
            Part::Head { res, channels, width, classes } => {
                write!(f, "head r{res} c{channels}-{width} cls{classes} {p}")
            }
            Part::Block { res, block: b } => {
                let se = b.se.map_or_else(|| "-".to_string(), |r| r.to_string());
                let part = serde_json::to_value(b.partition).ok().and_then(|v| v.as_str().map(str::to_string));
                let act = serde_json::to_value(b.act).ok().and_then(|v| v.as_str().map(str::to_string));
                write!(f, "block r{res} c{}-{} s{} e{} k{} ", b.in_ch, b.out, b.stride, b.expand, list(&b.kernels))?;
                write!(f, "{}{} ", part.unwrap_or_default(), if b.dilated && b.stride == 1 { " dil" } else { "" })?;
                write!(f, "g{}.{} se{se} {} {p}", b.expand_groups, b.project_groups, act.unwrap_or_default())?;
                write!(f, "{}", if b.has_residual() { " res" } else { "" })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixnet_s_has_a_stem_sixteen_blocks_and_a_head() {
        let keys: Vec<String> = parts(&space::presets::mixnet_s(), 224).iter().map(KeyedPart::key).collect();
        assert_eq!(keys.len(), 18);
        assert_eq!(keys[0], "stem r224 c3-16 k3 s2 sym");
        assert_eq!(keys[4], "block r56 c24-40 s2 e6 k3.5.7 equal g1.1 se0.5 swish sym");
        assert_eq!(keys[5], "block r28 c40-40 s1 e6 k3.5 equal g2.2 se0.5 swish sym res");
        assert_eq!(keys[17], "head r7 c200-1536 cls1000 sym");
    }
}
