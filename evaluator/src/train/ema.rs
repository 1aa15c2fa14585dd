//! Exponential moving average of weights (TF `ExponentialMovingAverage`, timm `ModelEmaV2`),
//! kept as f32 shadow copies keyed by name and swapped into the model for evaluation. Both
//! average the BN running statistics with the parameters (TF adds its `moving_vars`, timm
//! averages every state-dict entry), so the trainer hands it every model tensor.

use std::collections::HashMap;

use candle_core::{bail, DType, Device, Result, Tensor, Var};

use super::optim::{mutate_f32, read_f32};

/// Shadow values of a fixed `(name, Var)` list, passed the same every time.
pub struct Ema {
    decay: f64,
    warmup: bool,
    updates: u64,
    swapped: bool,
    shadow: Vec<(String, Vec<f32>)>,
}

impl Ema {
    /// Starts the shadows at the current values. With `warmup`, update `n` (1-based) uses
    /// `min(decay, (1 + n) / (10 + n))`, TF's `num_updates` rule when called once per step.
    pub fn new(params: &[(String, Var)], decay: f64, warmup: bool) -> Result<Self> {
        if !(0.0..=1.0).contains(&decay) {
            bail!("ema: decay {decay} must lie in [0, 1]")
        }
        let shadow = params.iter().map(|(n, v)| Ok((n.clone(), read_f32(v.as_tensor(), <[f32]>::to_vec)?)));
        Ok(Self { decay, warmup, updates: 0, swapped: false, shadow: shadow.collect::<Result<_>>()? })
    }

    /// Decay that the next [`Ema::update`] will use.
    pub fn next_decay(&self) -> f64 {
        let n = (self.updates + 1) as f64;
        if self.warmup {
            self.decay.min((1.0 + n) / (10.0 + n))
        } else {
            self.decay
        }
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// `shadow = d * shadow + (1 - d) * param` for every entry.
    pub fn update(&mut self, params: &[(String, Var)]) -> Result<()> {
        if self.swapped {
            bail!("ema: update while the EMA weights are swapped into the model")
        }
        self.check(params)?;
        let d = self.next_decay() as f32;
        for ((_, s), (_, v)) in self.shadow.iter_mut().zip(params) {
            read_f32(v.as_tensor(), |p| s.iter_mut().zip(p).for_each(|(s, p)| *s = d * *s + (1.0 - d) * p))?;
        }
        self.updates += 1;
        Ok(())
    }

    /// Exchanges shadow and model values in place: call once before evaluation, once after.
    pub fn swap(&mut self, params: &[(String, Var)]) -> Result<()> {
        self.check(params)?;
        for ((_, s), (_, v)) in self.shadow.iter_mut().zip(params) {
            mutate_f32(v.as_tensor(), |p| p.swap_with_slice(s))?;
        }
        self.swapped = !self.swapped;
        Ok(())
    }

    /// True between two [`Ema::swap`] calls.
    pub fn is_swapped(&self) -> bool {
        self.swapped
    }

    /// Shadow values as tensors shaped like `params` (for saving or building an eval model).
    pub fn tensors(&self, params: &[(String, Var)]) -> Result<Vec<(String, Tensor)>> {
        self.check(params)?;
        let pairs = self.shadow.iter().zip(params);
        pairs
            .map(|((n, s), (_, v))| Ok((n.clone(), Tensor::from_slice(s, v.as_tensor().shape(), &Device::Cpu)?)))
            .collect()
    }

    /// Restores shadows saved by [`Ema::tensors`] and the update count.
    pub fn load(&mut self, tensors: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        let mut loaded = Vec::with_capacity(self.shadow.len());
        for (name, s) in &self.shadow {
            let Some(t) = tensors.get(name) else { bail!("ema: tensor `{name}` is missing") };
            if t.elem_count() != s.len() || t.dtype() != DType::F32 {
                bail!("ema: tensor `{name}` is {:?} {:?}, expected F32 with {} elements", t.dtype(), t.dims(), s.len())
            }
            loaded.push(t.flatten_all()?.to_vec1::<f32>()?);
        }
        self.shadow.iter_mut().zip(loaded).for_each(|((_, s), l)| *s = l);
        self.updates = updates;
        Ok(())
    }

    fn check(&self, params: &[(String, Var)]) -> Result<()> {
        if params.len() != self.shadow.len() {
            bail!("ema: {} tensors given, {} tracked", params.len(), self.shadow.len())
        }
        for ((n, s), (m, v)) in self.shadow.iter().zip(params) {
            if n != m || s.len() != v.elem_count() {
                bail!("ema: tensor `{m}` ({} elements) given where `{n}` ({}) is tracked", v.elem_count(), s.len())
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &[f32]) -> Vec<(String, Var)> {
        vec![("w".into(), Var::new(v, &Device::Cpu).unwrap())]
    }

    #[test]
    fn warmup_decay_and_update_math() {
        let p = params(&[1.0, 2.0]);
        let mut ema = Ema::new(&p, 0.9999, true).unwrap();
        assert!((ema.next_decay() - 2.0 / 11.0).abs() < 1e-15);
        p[0].1.set(&Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap()).unwrap();
        ema.update(&p).unwrap();
        let d = 2.0f32 / 11.0;
        let want = [d * 1.0 + (1.0 - d) * 3.0, d * 2.0];
        let got = ema.tensors(&p).unwrap()[0].1.to_vec1::<f32>().unwrap();
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{got:?} vs {want:?}");
        assert!((ema.next_decay() - 3.0 / 12.0).abs() < 1e-15);
        let plain = Ema::new(&p, 0.9, false).unwrap();
        assert_eq!(plain.next_decay(), 0.9);
        ema.updates = 100_000; // (1 + n) / (10 + n) > 0.9999 from n = 89_991 on
        assert_eq!(ema.next_decay(), 0.9999);
    }

    #[test]
    fn swap_exchanges_and_restores() {
        let p = params(&[1.0, 2.0]);
        let mut ema = Ema::new(&p, 0.5, false).unwrap();
        p[0].1.set(&Tensor::new(&[3.0f32, 4.0], &Device::Cpu).unwrap()).unwrap();
        ema.update(&p).unwrap(); // shadow = [2, 3]
        let view = p[0].1.clone(); // a clone held by a model sees the swap too
        ema.swap(&p).unwrap();
        assert_eq!(view.to_vec1::<f32>().unwrap(), [2.0, 3.0]);
        assert!(ema.update(&p).is_err());
        ema.swap(&p).unwrap();
        assert_eq!(view.to_vec1::<f32>().unwrap(), [3.0, 4.0]);
        let saved: HashMap<_, _> = ema.tensors(&p).unwrap().into_iter().collect();
        let mut again = Ema::new(&p, 0.5, false).unwrap();
        again.load(&saved, ema.updates()).unwrap();
        assert_eq!(again.tensors(&p).unwrap()[0].1.to_vec1::<f32>().unwrap(), [2.0, 3.0]);
    }
}
