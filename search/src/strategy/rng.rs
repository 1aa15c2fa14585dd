//! A seeded random generator whose whole state is one `u64`, so a strategy's checkpoint can
//! hold it and a resumed run continues the exact same stream (rand's `StdRng` cannot be
//! serialised, and its algorithm may change between rand releases).
//!
//! The algorithm is SplitMix64 (Steele, Lea and Flood 2014): ample quality for sampling
//! architectures, and trivially portable.

use rand::RngCore;
use serde::{Deserialize, Serialize};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng { state: mix(seed) }
    }

    /// A generator for a named sub-stream of `seed`, independent of the others.
    pub fn derive(seed: u64, stream: u64) -> Self {
        SeededRng::new(mix(seed ^ mix(stream.wrapping_add(GOLDEN))))
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is below 2^-40 for the small n used here.
    pub fn below(&mut self, n: usize) -> usize {
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
}

/// The SplitMix64 finaliser: a bijective scramble of 64 bits.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
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

    #[test]
    fn state_round_trips_and_continues_the_stream() {
        let mut a = SeededRng::new(7);
        a.next_u64();
        let json = serde_json::to_string(&a).unwrap();
        let mut b: SeededRng = serde_json::from_str(&json).unwrap();
        assert_eq!((0..5).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(SeededRng::derive(7, 1), SeededRng::derive(7, 2));
    }

    #[test]
    fn categorical_follows_weights() {
        let mut r = SeededRng::new(1);
        let mut counts = [0; 3];
        for _ in 0..10_000 {
            counts[r.categorical(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[2] as f64 / 10_000.0 - 0.75).abs() < 0.02, "{counts:?}");
    }
}
