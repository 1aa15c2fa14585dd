//! Block tables, the one form in which presets, search spaces and space files describe a
//! network: a [`Base`] (everything but the blocks) and [`Row`]s. A row fixes `in`, `out` and
//! `stride` and lists the values each per-layer field may take; a search-space row lists several,
//! a preset's row one each. [`Row::blocks`] decodes a row at chosen option indices ([`Pick`])
//! into layers, and [`Base::arch`] puts the layers into a network (timm's `_decode_block_str`
//! idea: decoding is kept apart from building).

use std::fmt::Debug;
use std::ops::{Index, IndexMut};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::arch::{Activation, Arch, BatchNorm, Block, Head, Padding, Stem, ARCH_FORMAT};
use crate::scale::Partition;

/// The fixed part of every architecture in a table: all of an [`Arch`] but its blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    pub stem: Stem,
    pub head: Head,
    pub classes: usize,
    pub dropout: f64,
    pub padding: Padding,
    pub bn: BatchNorm,
}

impl Base {
    /// The base of `arch` (its blocks, name and provenance left out).
    pub fn of(arch: &Arch) -> Self {
        Base {
            stem: arch.stem.clone(),
            head: arch.head.clone(),
            classes: arch.classes,
            dropout: arch.dropout,
            padding: arch.padding,
            bn: arch.bn,
        }
    }

    /// The network of these blocks on this base.
    pub fn arch(&self, name: Option<String>, blocks: Vec<Block>) -> Arch {
        Arch {
            format: ARCH_FORMAT.to_string(),
            name,
            stem: self.stem.clone(),
            blocks,
            head: self.head.clone(),
            classes: self.classes,
            dropout: self.dropout,
            padding: self.padding,
            bn: self.bn,
            resolution: None,
            provenance: None,
        }
    }
}

/// What a value of a row may be: the bounds the derives of [`Row`] need.
pub trait Value: Clone + Debug + PartialEq + Serialize + DeserializeOwned {}
impl<T: Clone + Debug + PartialEq + Serialize + DeserializeOwned> Value for T {}

/// How completely a row is given: [`Given`] in a table, [`Written`] as a space file has it.
pub trait Form {
    /// `in`, `out`, `stride`.
    type One<T: Value>: Value;
    /// The option lists.
    type List<T: Value>: Value;
}

/// Every field present: the rows that presets and search spaces decode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Given;

impl Form for Given {
    type One<T: Value> = T;
    type List<T: Value> = Vec<T>;
}

/// Any field may be left out: a row of a space file (its lists default to the file's
/// `options`), or the `options` themselves (no `in`, `out`, `stride`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Written;

impl Form for Written {
    type One<T: Value> = Option<T>;
    type List<T: Value> = Option<Vec<T>>;
}

/// One row of a block table: `layers` layers, all the same block except that the first takes
/// the row's `stride` and `in` width (reference section 2.1). Each list holds the values its
/// field may take, in option order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct Row<F: Form = Given> {
    #[serde(rename = "in")]
    pub in_ch: F::One<usize>,
    pub out: F::One<usize>,
    pub stride: F::One<usize>,
    pub kernels: F::List<Vec<usize>>,
    pub expand: F::List<usize>,
    pub expand_groups: F::List<usize>,
    pub project_groups: F::List<usize>,
    pub se: F::List<Option<f64>>,
    pub act: F::List<Activation>,
    pub layers: F::List<usize>,
}

/// The per-row fields that take options, in decision order within a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Kernels,
    Expand,
    ExpandGroups,
    ProjectGroups,
    Se,
    Act,
    Layers,
}

pub const FIELDS: [Field; 7] =
    [Field::Kernels, Field::Expand, Field::ExpandGroups, Field::ProjectGroups, Field::Se, Field::Act, Field::Layers];

impl Field {
    /// The field's key in a space file.
    pub fn key(self) -> &'static str {
        match self {
            Field::Kernels => "kernels",
            Field::Expand => "expand",
            Field::ExpandGroups => "expand_groups",
            Field::ProjectGroups => "project_groups",
            Field::Se => "se",
            Field::Act => "act",
            Field::Layers => "layers",
        }
    }
}

/// The option index chosen for each field of one row. The default picks the first option of
/// every field: the only point of a preset's row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pick([usize; 7]);

impl Index<Field> for Pick {
    type Output = usize;
    fn index(&self, f: Field) -> &usize {
        &self.0[f as usize]
    }
}

impl IndexMut<Field> for Pick {
    fn index_mut(&mut self, f: Field) -> &mut usize {
        &mut self.0[f as usize]
    }
}

impl Row {
    /// The layers of the row at `pick`: the first layer, then its repeats.
    pub fn blocks(&self, pick: &Pick) -> Vec<Block> {
        let mut blocks = vec![self.block(pick, true)];
        let repeat = self.block(pick, false);
        blocks.extend((1..self.layers[pick[Field::Layers]]).map(|_| repeat.clone()));
        blocks
    }

    /// The first layer of the row (`first`) or one of its repeats. With expand 1 there is no
    /// expansion conv, so its groups are 1 whatever was picked.
    pub fn block(&self, pick: &Pick, first: bool) -> Block {
        let expand = self.expand[pick[Field::Expand]];
        Block {
            in_ch: if first { self.in_ch } else { self.out },
            out: self.out,
            stride: if first { self.stride } else { 1 },
            expand,
            kernels: self.kernels[pick[Field::Kernels]].clone(),
            partition: Partition::Equal,
            dilated: false,
            expand_groups: if expand == 1 { 1 } else { self.expand_groups[pick[Field::ExpandGroups]] },
            project_groups: self.project_groups[pick[Field::ProjectGroups]],
            se: self.se[pick[Field::Se]],
            act: self.act[pick[Field::Act]],
            skip: true,
        }
    }

    /// Number of options of a field.
    pub fn count(&self, f: Field) -> usize {
        match f {
            Field::Kernels => self.kernels.len(),
            Field::Expand => self.expand.len(),
            Field::ExpandGroups => self.expand_groups.len(),
            Field::ProjectGroups => self.project_groups.len(),
            Field::Se => self.se.len(),
            Field::Act => self.act.len(),
            Field::Layers => self.layers.len(),
        }
    }

    /// Human-readable labels of a field's options, in option order (`3.5.7`, `none`, `swish`).
    pub fn labels(&self, f: Field) -> Vec<String> {
        let nums = |v: &[usize]| v.iter().map(|x| x.to_string()).collect();
        match f {
            Field::Kernels => {
                self.kernels.iter().map(|k| k.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(".")).collect()
            }
            Field::Expand => nums(&self.expand),
            Field::ExpandGroups => nums(&self.expand_groups),
            Field::ProjectGroups => nums(&self.project_groups),
            Field::Se => self.se.iter().map(|s| s.map_or("none".to_string(), |r| r.to_string())).collect(),
            Field::Act => self.act.iter().map(|a| act_label(*a).to_string()).collect(),
            Field::Layers => nums(&self.layers),
        }
    }
}

fn act_label(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Swish => "swish",
    }
}
