//! The search space: an ordered list of named categorical decisions over a fixed skeleton
//! (MnasNet's factorised hierarchical space with MixNet's options). `decode` turns a vector of
//! choices (one option index per decision) into an [`Arch`]; `encode` inverts it.
//!
//! API contract (implementation in progress): see the signatures below.

use crate::arch::Arch;
use crate::load::ArchError;

/// One categorical decision, e.g. `row4.kernels` with options `["3", "3.5", "3.5.7", ...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub name: String,
    /// Human-readable option labels, in index order.
    pub options: Vec<String>,
}

/// A search space loaded from `configs/space-mixnet.json` or a user file.
#[derive(Clone, Debug)]
pub struct SearchSpace {
    pub decisions: Vec<Decision>,
}

impl SearchSpace {
    /// Decodes one choice vector into an architecture; wrong length or an index out of range
    /// is an error naming the decision.
    pub fn decode(&self, _choices: &[usize]) -> Result<Arch, ArchError> {
        unimplemented!("searchspace decode")
    }
}
