//! Seeded byte noise: "random" file content that is the same on every run.

/// `len` bytes from a fixed linear congruential generator started at `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}
