//! Exact parameter, multiply-add and activation counts of an [`Arch`] at a given resolution.
//!
//! Conventions (those of the reference and timm): parameters include BN scale and shift, SE
//! biases and the FC bias, not BN running statistics; MACs count conv and FC multiply-adds only;
//! activations are the output elements of every conv and FC layer.

use serde::Serialize;

use crate::arch::{Arch, Block};
use crate::scale::conv_out;

/// Counts for one part of the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub params: u64,
    pub macs: u64,
    pub activations: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.params += o.params;
        self.macs += o.macs;
        self.activations += o.activations;
    }
}

/// Per-part costs: stem, each block (with its input and output resolution), head, classifier.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub resolution: usize,
    pub stem: Cost,
    pub blocks: Vec<BlockCost>,
    pub head: Cost,
    pub classifier: Cost,
    pub total: Cost,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct BlockCost {
    pub resolution_in: usize,
    pub resolution_out: usize,
    #[serde(flatten)]
    pub cost: Cost,
}

/// A conv with BN: `weights` per output pixel, `out_ch` outputs over `pixels` positions.
fn conv_bn(weights: u64, out_ch: u64, pixels: u64) -> Cost {
    Cost { params: weights + 2 * out_ch, macs: weights * pixels, activations: out_ch * pixels }
}

/// Weights of a grouped 1x1 conv: each group is dense from its input slice to its output slice.
fn pointwise_weights(cin: usize, cout: usize, groups: usize) -> u64 {
    Block::pointwise_splits(cin, cout, groups).iter().map(|&(i, o)| (i * o) as u64).sum()
}

/// Cost of one block whose input is `res` x `res`.
pub fn block_cost(b: &Block, res: usize) -> Cost {
    let (mid, res_out) = (b.mid() as u64, conv_out(res, b.stride));
    let (pix_in, pix_out) = ((res * res) as u64, (res_out * res_out) as u64);
    let mut cost = Cost::default();
    if b.is_plain_conv() {
        return conv_bn((b.in_ch * b.out) as u64, b.out as u64, pix_out);
    }
    if b.has_expansion() {
        cost += conv_bn(pointwise_weights(b.in_ch, b.mid(), b.expand_groups), mid, pix_in);
    }
    let dw: u64 = b.depthwise_groups().iter().map(|g| (g.channels * g.kernel * g.kernel) as u64).sum();
    // A depthwise conv has one weight per output position per channel, not `weights` per pixel.
    cost += Cost { params: dw + 2 * mid, macs: dw * pix_out, activations: mid * pix_out };
    if let Some(se) = b.se_channels() {
        let se = se as u64;
        cost += Cost { params: 2 * se * mid + se + mid, macs: 2 * se * mid, activations: se + mid };
    }
    cost += conv_bn(pointwise_weights(b.mid(), b.out, b.project_groups), b.out as u64, pix_out);
    cost
}

/// Costs of every part of `arch` at `resolution` x `resolution` input.
pub fn cost(arch: &Arch, resolution: usize) -> CostReport {
    let s = &arch.stem;
    let mut res = conv_out(resolution, s.stride);
    let stem_w = (s.kernel * s.kernel * s.in_ch * s.out) as u64;
    let stem = conv_bn(stem_w, s.out as u64, (res * res) as u64);
    let mut total = stem;
    let mut blocks = Vec::with_capacity(arch.blocks.len());
    for b in &arch.blocks {
        let c = block_cost(b, res);
        let resolution_out = conv_out(res, b.stride);
        blocks.push(BlockCost { resolution_in: res, resolution_out, cost: c });
        total += c;
        res = resolution_out;
    }
    let width = arch.head.width as u64;
    let head = conv_bn(arch.last_channels() as u64 * width, width, (res * res) as u64);
    let classes = arch.classes as u64;
    let classifier = Cost { params: width * classes + classes, macs: width * classes, activations: classes };
    total += head;
    total += classifier;
    CostReport { resolution, stem, blocks, head, classifier, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn mixnet_totals_match_the_reference_exactly() {
        let want = [
            (presets::mixnet_s(), 4_134_606, 239_173_360, 6_252_094),
            (presets::mixnet_m(), 5_014_382, 339_172_672, 8_192_806),
            (presets::mixnet_l(), 7_329_252, 555_251_792, 10_835_532),
        ];
        for (arch, params, macs, acts) in want {
            let t = cost(&arch, 224).total;
            let name = arch.name.unwrap();
            assert_eq!((t.params, t.macs, t.activations), (params, macs, acts), "{name}");
        }
    }

    #[test]
    fn mixnet_s_per_block_params_match_the_reference() {
        let r = cost(&presets::mixnet_s(), 224);
        let per_block: Vec<u64> = r.blocks.iter().map(|b| b.cost.params).collect();
        #[rustfmt::skip]
        let want = [464, 3216, 2712, 17468, 24580, 24580, 24580, 32010, 87540, 87540, 102360,
                    103260, 103260, 361900, 655700, 655700];
        assert_eq!(per_block, want);
        assert_eq!(r.stem.params, 464);
        assert_eq!(r.head.params, 310_272);
        assert_eq!(r.classifier.params, 1_537_000);
    }
}
