//! Rows of a search space whose options are whole layers (NAS-Bench-Macro's kind of space): a
//! row fixes `in`, `out` and `stride`, and its `layer` list holds the alternatives, each either
//! `"identity"` or a one-block template. Identity is no layer at all where the shape allows it
//! (stride 1, `in` == `out`) and a plain strided 1x1 conv + BN where it does not, as
//! NAS-Bench-Macro builds it.

use serde::{Deserialize, Serialize, Serializer};

use crate::arch::{Activation, Block};
use crate::scale::Partition;

/// One block without its shape: the row gives `in`, `out` and `stride`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub kernels: Vec<usize>,
    pub expand: usize,
    #[serde(default = "one")]
    pub expand_groups: usize,
    #[serde(default = "one")]
    pub project_groups: usize,
    #[serde(default)]
    pub se: Option<f64>,
    pub act: Activation,
}

fn one() -> usize {
    1
}

/// One alternative of a layer row.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Identity,
    Block(Template),
}

impl Serialize for Layer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Layer::Identity => s.serialize_str(IDENTITY),
            Layer::Block(t) => t.serialize(s),
        }
    }
}

/// How identity is written in a space file.
pub const IDENTITY: &str = "identity";

/// A row whose one decision is which of `layer` it holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerRow {
    #[serde(rename = "in")]
    pub in_ch: usize,
    pub out: usize,
    pub stride: usize,
    pub layer: Vec<Layer>,
}

impl LayerRow {
    /// Whether identity leaves the row without a layer (else it is a 1x1 conv + BN).
    pub fn keeps_shape(&self) -> bool {
        self.stride == 1 && self.in_ch == self.out
    }

    /// The block alternative `i` puts in the network, `None` for an absent identity.
    pub fn block(&self, i: usize) -> Option<Block> {
        match &self.layer[i] {
            Layer::Identity if self.keeps_shape() => None,
            Layer::Identity => Some(Block::plain_conv(self.in_ch, self.out, self.stride)),
            Layer::Block(t) => Some(Block {
                in_ch: self.in_ch,
                out: self.out,
                stride: self.stride,
                expand: t.expand,
                kernels: t.kernels.clone(),
                partition: Partition::Equal,
                dilated: false,
                expand_groups: if t.expand == 1 { 1 } else { t.expand_groups },
                project_groups: t.project_groups,
                se: t.se,
                act: t.act,
                skip: true,
            }),
        }
    }

    /// Labels in option order: `identity` (or `conv1x1` where identity changes the shape), and
    /// `mb<expand>_k<kernels>[_se<ratio>]_<act>` for templates (`mb3_k3_relu`).
    pub fn labels(&self) -> Vec<String> {
        let label = |layer: &Layer| match layer {
            Layer::Identity if self.keeps_shape() => IDENTITY.to_string(),
            Layer::Identity => "conv1x1".to_string(),
            Layer::Block(t) => {
                let kernels: Vec<String> = t.kernels.iter().map(|k| k.to_string()).collect();
                let se = t.se.map_or(String::new(), |r| format!("_se{r}"));
                let groups = match (t.expand_groups, t.project_groups) {
                    (1, 1) => String::new(),
                    (e, p) => format!("_g{e}.{p}"),
                };
                let act = serde_json::to_value(t.act).ok().and_then(|v| v.as_str().map(String::from));
                format!("mb{}_k{}{groups}{se}_{}", t.expand, kernels.join("."), act.unwrap_or_default())
            }
        };
        self.layer.iter().map(label).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(in_ch: usize, out: usize, stride: usize) -> LayerRow {
        let t = Template {
            kernels: vec![3, 5],
            expand: 6,
            expand_groups: 2,
            project_groups: 1,
            se: Some(0.25),
            act: Activation::Swish,
        };
        LayerRow { in_ch, out, stride, layer: vec![Layer::Identity, Layer::Block(t)] }
    }

    #[test]
    fn identity_is_absent_only_where_the_shape_is_kept() {
        assert_eq!(row(16, 16, 1).block(0), None);
        assert_eq!(row(16, 24, 1).block(0), Some(Block::plain_conv(16, 24, 1)));
        assert_eq!(row(16, 16, 2).block(0), Some(Block::plain_conv(16, 16, 2)));
        let b = row(16, 24, 2).block(1).unwrap();
        assert_eq!((b.in_ch, b.out, b.stride, b.mid(), b.expand_groups), (16, 24, 2, 96, 2));
        assert_eq!(row(16, 16, 1).labels(), ["identity", "mb6_k3.5_g2.1_se0.25_swish"]);
        assert_eq!(row(16, 24, 2).labels()[0], "conv1x1");
    }
}
