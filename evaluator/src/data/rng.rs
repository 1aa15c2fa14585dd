//! The data pipeline's seeds: every subset, split, epoch order and crop is drawn from a
//! [`SplitMix64`] seeded through [`derive`], so the embedded subset and a run's data stay
//! reproducible whatever version of `rand` the workspace later moves to.

pub(crate) use crate::rng::SplitMix64;

/// Derives an independent stream seed from a parent seed and a tag (class, epoch, sample, ...).
pub(crate) fn derive(seed: u64, tag: u64) -> u64 {
    SplitMix64::new(seed ^ tag.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_differ() {
        assert_ne!(derive(1, 0), derive(1, 1));
        assert_ne!(derive(1, 0), derive(2, 0));
    }
}
