//! Seeded tensors for kernel and model tests.

use candle_core::{DType, Device, Result, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Uniform in [-1, 1) on the CPU, reproducible from `seed`.
pub fn rand(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = shape.iter().product();
    let v: Vec<f64> = (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
}

/// A tensor's values, flattened, as f32 (for the kernels that take slices).
pub fn vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}
