//! `space`: MixNet-style architectures and the search space over them, with no ML engine.
//!
//! The primary type is [`Arch`], one whole network as a self-contained JSON document. Every
//! width rule (channel splits, width rounding, SE width) lives once, in [`scale`], so the exact
//! cost model here and the candle models in `evaluator` cannot disagree on a shape.

pub mod arch;
pub mod cost;
pub mod family;
pub mod layers;
pub mod load;
pub mod presets;
pub mod scale;
pub mod searchspace;
pub mod table;
pub mod timm;
pub mod validate;

pub use arch::{
    Activation, Arch, BatchNorm, Block, DepthwiseGroup, Head, Padding, Provenance, Stem, Stopwatch, ARCH_FORMAT,
};
pub use cost::{cost, Cost, CostReport};
pub use family::CodeRule;
pub use load::{load_arch, parse_arch, ArchError};
pub use scale::Partition;
pub use searchspace::{Decision, SearchSpace, SpaceRow};
pub use table::{Base, Pick, Row};
