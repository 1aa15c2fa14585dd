//! Learning-rate schedules, evaluated per optimiser step. Epoch-based lengths are converted to
//! steps with the caller's `steps_per_epoch`, so one schedule serves any data-set size.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule; `lr_at(step, steps_per_epoch)` with `step` counting from 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    Constant {
        lr: f64,
    },
    /// Linear warm-up from `warmup_start_lr` to `peak_lr` over `warmup_epochs`, then a half
    /// cosine from `peak_lr` down to `floor_lr` at `total_epochs` (held there afterwards).
    WarmupCosine {
        peak_lr: f64,
        warmup_epochs: f64,
        total_epochs: f64,
        #[serde(default)]
        floor_lr: f64,
        #[serde(default)]
        warmup_start_lr: f64,
    },
    /// TF MnasNet/MixNet: `peak_lr * decay_rate^floor(epoch / decay_epochs)`, with the decay
    /// counted from step 0 as TF's `exponential_decay(staircase=True)` and timm's `StepLR` do,
    /// and the first `warmup_epochs` replaced by a linear ramp from `warmup_start_lr`.
    WarmupExpStep {
        peak_lr: f64,
        warmup_epochs: f64,
        #[serde(default = "tf_decay_rate")]
        decay_rate: f64,
        #[serde(default = "tf_decay_epochs")]
        decay_epochs: f64,
        #[serde(default)]
        warmup_start_lr: f64,
    },
    /// PyTorch `OneCycleLR` (two phases, cosine annealing): from `max_lr / div_factor` up to
    /// `max_lr` at step `pct_start * total - 1`, then down to `initial / final_div_factor` at
    /// step `total - 1`, where `total = round(total_epochs * steps_per_epoch)`.
    OneCycle {
        max_lr: f64,
        total_epochs: f64,
        #[serde(default = "one_cycle_pct_start")]
        pct_start: f64,
        #[serde(default = "one_cycle_div")]
        div_factor: f64,
        #[serde(default = "one_cycle_final_div")]
        final_div_factor: f64,
    },
}

fn tf_decay_rate() -> f64 {
    0.97
}
fn tf_decay_epochs() -> f64 {
    2.4
}
fn one_cycle_pct_start() -> f64 {
    0.3
}
fn one_cycle_div() -> f64 {
    25.0
}
fn one_cycle_final_div() -> f64 {
    1e4
}

impl LrSchedule {
    /// The TF MnasNet/MixNet schedule: warm-up over 5 epochs, then x0.97 every 2.4 epochs.
    pub fn tf_mnasnet(peak_lr: f64) -> Self {
        Self::WarmupExpStep {
            peak_lr,
            warmup_epochs: 5.0,
            decay_rate: tf_decay_rate(),
            decay_epochs: tf_decay_epochs(),
            warmup_start_lr: 0.0,
        }
    }

    /// PyTorch `OneCycleLR` defaults for `max_lr` over `total_epochs`.
    pub fn one_cycle(max_lr: f64, total_epochs: f64) -> Self {
        Self::OneCycle {
            max_lr,
            total_epochs,
            pct_start: one_cycle_pct_start(),
            div_factor: one_cycle_div(),
            final_div_factor: one_cycle_final_div(),
        }
    }

    /// Learning rate for optimiser step `step` (0-based).
    pub fn lr_at(&self, step: u64, steps_per_epoch: u64) -> f64 {
        let spe = steps_per_epoch.max(1) as f64;
        let s = step as f64;
        match *self {
            Self::Constant { lr } => lr,
            Self::WarmupCosine { peak_lr, warmup_epochs, total_epochs, floor_lr, warmup_start_lr } => {
                let (warm, total) = (warmup_epochs * spe, total_epochs * spe);
                if s < warm {
                    return ramp(warmup_start_lr, peak_lr, s / warm);
                }
                let t = if total > warm { ((s - warm) / (total - warm)).min(1.0) } else { 1.0 };
                cos_anneal(peak_lr, floor_lr, t)
            }
            Self::WarmupExpStep { peak_lr, warmup_epochs, decay_rate, decay_epochs, warmup_start_lr } => {
                let epoch = s / spe;
                if epoch < warmup_epochs {
                    return ramp(warmup_start_lr, peak_lr, epoch / warmup_epochs);
                }
                peak_lr * decay_rate.powf((epoch / decay_epochs).floor())
            }
            Self::OneCycle { max_lr, total_epochs, pct_start, div_factor, final_div_factor } => {
                let initial = max_lr / div_factor;
                let min_lr = initial / final_div_factor;
                let total = (total_epochs * spe).round();
                let (up_end, down_end) = (pct_start * total - 1.0, total - 1.0);
                if s <= up_end {
                    cos_anneal(initial, max_lr, s / up_end)
                } else if down_end > up_end {
                    cos_anneal(max_lr, min_lr, ((s - up_end) / (down_end - up_end)).min(1.0))
                } else {
                    min_lr
                }
            }
        }
    }
}

/// Linear interpolation from `a` (t = 0) to `b` (t = 1).
fn ramp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

/// Half-cosine from `a` (t = 0) to `b` (t = 1), as PyTorch's `_annealing_cos`.
fn cos_anneal(a: f64, b: f64, t: f64) -> f64 {
    b + (a - b) / 2.0 * ((std::f64::consts::PI * t).cos() + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::float::assert_rel_close;

    const REL: f64 = 1e-12;

    #[test]
    fn warmup_cosine_key_steps() {
        let s = LrSchedule::WarmupCosine {
            peak_lr: 0.1,
            warmup_epochs: 2.0,
            total_epochs: 12.0,
            floor_lr: 0.001,
            warmup_start_lr: 0.0,
        };
        assert_rel_close(s.lr_at(0, 100), 0.0, REL);
        assert_rel_close(s.lr_at(100, 100), 0.05, REL);
        assert_rel_close(s.lr_at(200, 100), 0.1, REL); // warm-up end
        assert_rel_close(s.lr_at(700, 100), 0.0505, REL); // half way through the cosine
        assert_rel_close(s.lr_at(1200, 100), 0.001, REL); // end
        assert_rel_close(s.lr_at(5000, 100), 0.001, REL);
    }

    #[test]
    fn tf_staircase_key_steps() {
        let s = LrSchedule::tf_mnasnet(0.256);
        assert_rel_close(s.lr_at(0, 10), 0.0, REL);
        assert_rel_close(s.lr_at(25, 10), 0.128, REL);
        // Warm-up ends at epoch 5; two 2.4-epoch decays have already been counted.
        assert_rel_close(s.lr_at(50, 10), 0.256 * 0.97f64.powi(2), REL);
        assert_rel_close(s.lr_at(71, 10), 0.256 * 0.97f64.powi(2), REL); // epoch 7.1 < 7.2
        assert_rel_close(s.lr_at(72, 10), 0.256 * 0.97f64.powi(3), REL);
        assert_rel_close(s.lr_at(3500, 10), 0.256 * 0.97f64.powi(145), REL); // epoch 350
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        let s = LrSchedule::one_cycle(1.0, 10.0);
        // 100 steps: peak at step 29, end at step 99.
        assert_rel_close(s.lr_at(0, 10), 0.04, REL);
        assert_rel_close(s.lr_at(29, 10), 1.0, REL);
        assert_rel_close(s.lr_at(64, 10), (1.0 + 0.04 / 1e4) / 2.0, REL);
        assert_rel_close(s.lr_at(99, 10), 0.04 / 1e4, REL);
        // PyTorch value at step 10: cos anneal 0.04 -> 1 at pct 10/29.
        assert_rel_close(
            s.lr_at(10, 10),
            1.0 + (0.04 - 1.0) / 2.0 * ((std::f64::consts::PI * 10.0 / 29.0).cos() + 1.0),
            REL,
        );
    }

    #[test]
    fn serde_round_trip_with_defaults() {
        let s: LrSchedule =
            serde_json::from_str(r#"{"kind":"warmup_exp_step","peak_lr":0.016,"warmup_epochs":5}"#).unwrap();
        assert_eq!(
            s,
            LrSchedule::WarmupExpStep {
                peak_lr: 0.016,
                warmup_epochs: 5.0,
                decay_rate: 0.97,
                decay_epochs: 2.4,
                warmup_start_lr: 0.0
            }
        );
        let back: LrSchedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_rel_close(LrSchedule::Constant { lr: 0.3 }.lr_at(123, 7), 0.3, REL);
        assert!(serde_json::from_str::<LrSchedule>(r#"{"kind":"constant","lr":1,"x":2}"#).is_err());
    }
}
