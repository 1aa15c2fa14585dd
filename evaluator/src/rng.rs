//! The workspace's one seeded generator, SplitMix64 (Steele, Lea and Flood 2014): one `u64` of
//! state, ample quality for sampling data and architectures, trivially portable. Its streams
//! never change with a `rand` release, and a checkpoint can hold its whole state, so a resumed
//! search continues the exact same stream (rand's `StdRng` cannot be serialised).
//!
//! Two families of streams use it and must stay as they were recorded: the data pipeline's
//! (subsets, splits, epoch orders, crops), seeded with [`SplitMix64::new`] and drawing indices
//! with [`SplitMix64::below`] (multiply-shift), and the search's (strategies, controller, the
//! surrogate's noise), seeded with [`SplitMix64::scrambled`] or [`SplitMix64::derive`] and
//! drawing with [`SplitMix64::below_by_modulo`]. The two `below`s give different indices for
//! the same draw; each is kept so that every seed gives the same runs as before.

use rand::RngCore;
use serde::{Deserialize, Serialize};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Serialises as `{"state": N}`, the form search checkpoints hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    /// The next output is `mix(state + GOLDEN)`.
    state: u64,
}

impl SplitMix64 {
    /// The textbook seeding: the first output is `mix(seed)`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed.wrapping_sub(GOLDEN) }
    }

    /// Starts from the scrambled seed, so nearby seeds start far apart in the stream.
    pub fn scrambled(seed: u64) -> Self {
        SplitMix64 { state: mix(seed) }
    }

    /// A generator for a named sub-stream of `seed`, independent of the others.
    pub fn derive(seed: u64, stream: u64) -> Self {
        SplitMix64::scrambled(mix(seed ^ mix(stream.wrapping_add(GOLDEN))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` by multiply-shift; the bias (n / 2^64) is irrelevant at data-set sizes.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `0..n` (n > 0) by the remainder; the bias is below 2^-40 for the small n of
    /// search choices.
    pub fn below_by_modulo(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Index drawn from unnormalised non-negative weights.
    pub fn categorical(&mut self, weights: &[f32]) -> usize {
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        let mut u = self.uniform() * total;
        for (i, &w) in weights.iter().enumerate() {
            u -= w as f64;
            if u < 0.0 {
                return i;
            }
        }
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }

    /// Fisher-Yates with [`Self::below`], written out so the permutation for a seed can never
    /// change under us.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The SplitMix64 finaliser of `x + GOLDEN`: a bijective scramble of 64 bits.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        SplitMix64::next_u64(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data pipeline's generator as it was written on its own: state = seed.
    fn data_stream(seed: u64, n: usize) -> Vec<u64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            })
            .collect()
    }

    #[test]
    fn both_seedings_keep_their_recorded_streams() {
        let mut data = SplitMix64::new(42);
        assert_eq!((0..50).map(|_| data.next_u64()).collect::<Vec<_>>(), data_stream(42, 50));
        // The search's generator kept `mix(seed)` as its state and stepped with `mix`.
        let mut search = SplitMix64::scrambled(42);
        let mut state = mix(42);
        for _ in 0..50 {
            state = state.wrapping_add(GOLDEN);
            assert_eq!(search.next_u64(), mix(state));
        }
        assert_eq!(serde_json::to_string(&SplitMix64::scrambled(7)).unwrap(), format!("{{\"state\":{}}}", mix(7)));
    }

    #[test]
    fn the_two_belows_are_multiply_shift_and_modulo() {
        let raw = SplitMix64::new(5).next_u64();
        assert_eq!(SplitMix64::new(5).below(10), ((raw as u128 * 10) >> 64) as usize);
        assert_eq!(SplitMix64::new(5).below_by_modulo(10), (raw % 10) as usize);
    }

    #[test]
    fn state_round_trips_and_continues_the_stream() {
        let mut a = SplitMix64::scrambled(7);
        a.next_u64();
        let json = serde_json::to_string(&a).unwrap();
        let mut b: SplitMix64 = serde_json::from_str(&json).unwrap();
        assert_eq!((0..5).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(SplitMix64::derive(7, 1), SplitMix64::derive(7, 2));
    }

    #[test]
    fn categorical_follows_weights() {
        let mut r = SplitMix64::scrambled(1);
        let mut counts = [0; 3];
        for _ in 0..10_000 {
            counts[r.categorical(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[2] as f64 / 10_000.0 - 0.75).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        SplitMix64::new(7).shuffle(&mut a);
        SplitMix64::new(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }
}
