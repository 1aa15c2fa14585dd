//! Named, seeded parameters. Every name follows from the `Arch` alone
//! (`blocks.3.dw.1.weight`), so training, checkpoints and weight import share one key space.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};

/// A parameter or buffer with its name. Buffers (BN running statistics) are not trained.
#[derive(Clone)]
pub struct Named {
    pub name: String,
    pub var: Var,
    pub trainable: bool,
}

/// Creates the model's tensors in construction order from one seeded RNG (TF/timm init).
pub struct ParamStore {
    rng: StdRng,
    device: Device,
    pub entries: Vec<Named>,
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), device: device.clone(), entries: Vec::new() }
    }

    fn push(&mut self, name: String, data: Vec<f32>, shape: &[usize], trainable: bool) -> Result<Var> {
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?)?;
        self.entries.push(Named { name, var: var.clone(), trainable });
        Ok(var)
    }

    /// Conv weight `[out, in, k, k]` ~ N(0, sqrt(2 / fan_out)), fan_out = k*k*out / groups of
    /// that conv (timm `_init_weight_goog`; a depthwise group has fan_out = k*k).
    pub fn conv(&mut self, name: String, shape: [usize; 4], fan_out: usize) -> Result<Var> {
        let normal = Normal::new(0.0, (2.0 / fan_out as f64).sqrt()).expect("positive std");
        let data = (0..shape.iter().product()).map(|_| normal.sample(&mut self.rng) as f32).collect();
        self.push(name, data, &shape, true)
    }

    /// Linear weight `[out, in]` ~ U(+-1/sqrt(out)) (timm `_init_weight_goog` for Linear).
    pub fn linear(&mut self, name: String, out: usize, inp: usize) -> Result<Var> {
        let r = 1.0 / (out as f64).sqrt();
        let uniform = Uniform::new_inclusive(-r, r);
        let data = (0..out * inp).map(|_| uniform.sample(&mut self.rng) as f32).collect();
        self.push(name, data, &[out, inp], true)
    }

    pub fn constant(&mut self, name: String, len: usize, value: f32, trainable: bool) -> Result<Var> {
        self.push(name, vec![value; len], &[len], trainable)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// Copies `src` into `var` after checking the shape; the error names the tensor.
pub fn assign(var: &Var, src: &Tensor, name: &str) -> Result<()> {
    if var.dims() != src.dims() {
        candle_core::bail!(
            "{name}: shape {:?} does not fit the architecture, which expects {:?}",
            src.dims(),
            var.dims()
        );
    }
    var.set(&src.to_dtype(DType::F32)?)
}
