//! The proxy task that scores a search candidate: a short training run from fresh weights,
//! scored on the validation hold-out.

use std::time::Instant;

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};
use space::Arch;

use super::prepared::PreparedData;
use super::trainer::{accuracy, progress_bar, TrainConfig, Trainer};

/// The proxy task of a search: a short training run scored on the validation hold-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub epochs: usize,
    pub batch: usize,
    pub max_lr: f64,
    /// Train and score at this square size (bilinear resize per batch); `None`: as stored.
    /// Halving the side makes a step about four times cheaper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<usize>,
    /// Train a copy with every block's width scaled by this ([`Arch::widened`]); `None`: as
    /// given. Narrower is cheaper without shrinking the planes the large kernels see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self { epochs: 2, batch: 64, max_lr: 0.1, resolution: None, width: None }
    }
}

/// What a proxy training gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyResult {
    pub val_accuracy: f64,
    /// Last epoch's mean training loss.
    pub train_loss: f64,
    /// Mean of every epoch's training loss: the area under the training curve.
    pub mean_train_loss: f64,
    pub train_seconds: f64,
    pub images_per_s: f64,
}

/// Trains `arch` briefly (one-cycle SGD-Nesterov) and scores it on the validation split.
/// Deterministic for a seed. A diverged run is an error, which the search records as failed.
pub fn proxy_evaluate(arch: &Arch, cfg: &ProxyConfig, data: &PreparedData, seed: u64) -> Result<ProxyResult> {
    let tc = TrainConfig::one_cycle(cfg.epochs, cfg.batch, cfg.max_lr, seed);
    let train = data.train_loader(cfg.batch, seed, cfg.resolution);
    let val = data.eval_loader(&data.val, 256, cfg.resolution);
    let trained = cfg.width.map_or_else(|| arch.clone(), |w| arch.widened(w));
    let mut trainer = Trainer::new(&trained, tc, train, None)?;
    let bar = progress_bar(true);
    let start = Instant::now();
    let (mut last, mut loss_sum) = (None, 0.0);
    for _ in 0..cfg.epochs {
        match trainer.run_epoch(&bar)? {
            Ok(m) => {
                loss_sum += m.train_loss;
                last = Some(m)
            }
            Err(d) => return Err(Error::msg(format!("diverged (NaN loss) at epoch {} step {}", d.epoch + 1, d.step))),
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let val_accuracy = accuracy(&trainer.net, &val)?;
    let last = last.ok_or_else(|| Error::msg("proxy training needs at least one epoch"))?;
    Ok(ProxyResult {
        val_accuracy,
        train_loss: last.train_loss,
        mean_train_loss: loss_sum / cfg.epochs as f64,
        train_seconds,
        images_per_s: last.images_per_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures::small_data;
    use testkit::arch::mixnet_s_prefix;

    #[test]
    fn proxy_training_learns_and_is_deterministic() {
        let data = small_data();
        let cfg = ProxyConfig { epochs: 2, batch: 16, max_lr: 0.05, resolution: None, width: None };
        let a = proxy_evaluate(&mixnet_s_prefix(4), &cfg, &data, 5).unwrap();
        let b = proxy_evaluate(&mixnet_s_prefix(4), &cfg, &data, 5).unwrap();
        assert_eq!((a.val_accuracy, a.train_loss), (b.val_accuracy, b.train_loss));
        assert!(a.val_accuracy > 0.2, "10 classes, chance is 0.1: got {}", a.val_accuracy);
        assert!(a.mean_train_loss > a.train_loss, "the first epoch's loss is higher than the last: {a:?}");
    }

    #[test]
    fn a_width_trains_the_widened_copy() {
        let data = small_data();
        let cfg = ProxyConfig { epochs: 1, batch: 16, max_lr: 0.05, resolution: None, width: Some(0.5) };
        let narrow = proxy_evaluate(&mixnet_s_prefix(4), &cfg, &data, 5).unwrap();
        let copy = mixnet_s_prefix(4).widened(0.5);
        let direct = proxy_evaluate(&copy, &ProxyConfig { width: None, ..cfg.clone() }, &data, 5).unwrap();
        assert_eq!((narrow.val_accuracy, narrow.train_loss), (direct.val_accuracy, direct.train_loss));
        assert_eq!(narrow.mean_train_loss, narrow.train_loss, "one epoch: the mean is that epoch's loss");
        let full = proxy_evaluate(&mixnet_s_prefix(4), &ProxyConfig { width: None, ..cfg }, &data, 5).unwrap();
        assert_ne!(full.train_loss, narrow.train_loss);
    }
}
