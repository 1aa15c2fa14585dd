//! The training loop: one [`Trainer`] owns a model, its optimiser (and EMA), the train and
//! validation loaders, and runs epochs. Every random draw (data order, augmentation, dropout)
//! is derived from `(seed, epoch)`, so an epoch replays exactly after a resume.

use std::io::IsTerminal;
use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use space::Arch;

use super::ema::Ema;
use super::loss::{cross_entropy, top1_correct};
use super::optim::{Optimizer, OptimizerConfig, SgdConfig};
use super::schedule::LrSchedule;
use crate::data::Loader;
use crate::model::{adapt_for_resolution, MixNet};

/// Everything that decides a training run besides the architecture and the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    pub label_smoothing: f64,
    /// EMA decay of the weights and BN statistics (evaluation and the saved model use the
    /// averages); `None` for no EMA.
    pub ema_decay: Option<f64>,
    pub seed: u64,
    /// Fine-tuning: starting weights (a checkpoint directory or a timm `.safetensors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<std::path::PathBuf>,
    /// Fine-tuning: the stem and blocks `0..N` stay as loaded (see [`MixNet::freeze_until`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_until: Option<usize>,
    /// Fine-tuning: learning-rate multiplier for every tensor but the classifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone_lr_scale: Option<f64>,
    /// Train and evaluate at this square size (bilinear resize per batch); `None`: as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<usize>,
}

impl TrainConfig {
    /// SGD with Nesterov momentum under a one-cycle schedule and label smoothing 0.1: the
    /// short-run recipe used for proxies and for the CIFAR comparison with PyTorch.
    pub fn one_cycle(epochs: usize, batch: usize, max_lr: f64, seed: u64) -> Self {
        let sgd = SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 5e-4 };
        TrainConfig {
            epochs,
            batch,
            optimizer: OptimizerConfig::Sgd(sgd),
            schedule: LrSchedule::one_cycle(max_lr, epochs as f64),
            label_smoothing: 0.1,
            ema_decay: None,
            seed,
            init: None,
            freeze_until: None,
            backbone_lr_scale: None,
            resolution: None,
        }
    }

    /// Refuses settings that cannot apply to `arch`, naming the setting and what is allowed.
    pub fn check(&self, arch: &Arch) -> std::result::Result<(), String> {
        let blocks = arch.blocks.len();
        if let Some(n) = self.freeze_until.filter(|&n| n > blocks) {
            return Err(format!("--freeze-until {n}: the architecture has {blocks} blocks (allowed: 0 to {blocks})"));
        }
        if let Some(s) = self.backbone_lr_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "--backbone-lr-scale {s}: must be a finite number > 0 (to freeze, use --freeze-until)"
            ));
        }
        if let Some(r) = self.resolution.filter(|r| !(MIN_RESOLUTION..=MAX_RESOLUTION).contains(r)) {
            return Err(format!("--resolution {r}: allowed {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels"));
        }
        Ok(())
    }
}

/// Sizes `--resolution` accepts: below 8 px the network's five halvings leave nothing.
pub const MIN_RESOLUTION: usize = 8;
pub const MAX_RESOLUTION: usize = 1024;

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: Option<f64>,
    pub lr: f64,
    pub images_per_s: f64,
    pub seconds: f64,
}

impl EpochMetrics {
    /// The epoch in one line for a log, out of `epochs`.
    pub fn line(&self, epochs: usize) -> String {
        let val = self.val_accuracy.map_or("-".into(), |v| format!("{v:.4}"));
        format!(
            "epoch {}/{epochs}  loss {:.4}  train acc {:.4}  val acc {val}  {:.0} img/s  {:.1}s",
            self.epoch, self.train_loss, self.train_accuracy, self.images_per_s, self.seconds
        )
    }
}

/// A model being trained, with everything needed to continue it.
pub struct Trainer {
    pub net: MixNet,
    /// The architecture as given, before adaptation to the data.
    pub source_arch: Arch,
    pub optimizer: Optimizer,
    pub ema: Option<Ema>,
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    pub train: Loader,
    pub val: Option<Loader>,
}

/// The loss turned NaN or infinite: training stops and the last checkpoint stays.
#[derive(Debug)]
pub struct Diverged {
    pub epoch: usize,
    pub step: usize,
}

impl Trainer {
    /// A fresh model for `arch` (adapted for the loader's image size), initialised from the seed.
    pub fn new(source_arch: &Arch, config: TrainConfig, train: Loader, val: Option<Loader>) -> Result<Self> {
        let resolution = train.output_shape().height;
        let mut arch = adapt_for_resolution(source_arch, resolution);
        arch.stem.in_ch = train.output_shape().channels;
        arch.classes = train.dataset().num_classes();
        config.check(&arch).map_err(candle_core::Error::Msg)?;
        let mut net = MixNet::new(&arch, config.seed, &Device::Cpu)?;
        if let Some(source) = &config.init {
            if super::init::init_from(&net, source)? {
                eprintln!("--init {}: classifier re-created for {} classes", source.display(), arch.classes);
            }
        }
        let mut optimizer = Optimizer::new(net.trainable(), config.optimizer)?;
        if let Some(n) = config.freeze_until {
            net.freeze_until(n)?;
            optimizer.freeze(|name| MixNet::is_frozen_name(name, n));
        }
        if let Some(scale) = config.backbone_lr_scale {
            optimizer.set_lr_scale(|name| if name.starts_with("classifier.") { 1.0 } else { scale })?;
        }
        let ema = match config.ema_decay {
            Some(d) => Some(Ema::new(&net.tensors(), d, true)?),
            None => None,
        };
        Ok(Self { net, source_arch: source_arch.clone(), optimizer, ema, config, epoch: 0, train, val })
    }

    fn steps_per_epoch(&self) -> u64 {
        self.train.batches_per_epoch() as u64
    }

    /// Runs the next epoch; `Ok(Err(Diverged))` when the loss stops being finite.
    pub fn run_epoch(&mut self, progress: &ProgressBar) -> Result<std::result::Result<EpochMetrics, Diverged>> {
        let epoch = self.epoch;
        let steps = self.steps_per_epoch();
        let mut rng = StdRng::seed_from_u64(self.config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let tensors = self.net.tensors();
        let (net, optimizer, ema) = (&self.net, &mut self.optimizer, &mut self.ema);
        let smoothing = self.config.label_smoothing;
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0, 0usize, 0usize, 0.0);
        let start = Instant::now();
        progress.set_length(steps);
        progress.set_position(0);
        for (step, (x, y)) in self.train.epoch(epoch as u64).enumerate() {
            lr = self.config.schedule.lr_at(epoch as u64 * steps + step as u64, steps);
            // On the compute pool: the kernels' parallel loops then run without a thread hand-off.
            let stepped = crate::on_pool(|| -> Result<Option<(Tensor, f64)>> {
                let logits = net.forward_train(&x, &mut rng)?;
                let loss = cross_entropy(&logits, &y, smoothing)?;
                let loss_value = loss.to_scalar::<f32>()? as f64;
                if !loss_value.is_finite() {
                    return Ok(None);
                }
                optimizer.step(&loss.backward()?, lr)?;
                if let Some(ema) = ema.as_mut() {
                    ema.update(&tensors)?;
                }
                Ok(Some((logits, loss_value)))
            })?;
            let Some((logits, loss_value)) = stepped else { return Ok(Err(Diverged { epoch, step })) };
            let n = y.dim(0)?;
            loss_sum += loss_value * n as f64;
            correct += top1_correct(&logits, &y)?;
            seen += n;
            let rate = seen as f64 / start.elapsed().as_secs_f64();
            progress.set_message(format!(
                "epoch {} loss {:.4} acc {:.3} {rate:.0} img/s",
                epoch + 1,
                loss_sum / seen as f64,
                correct as f64 / seen as f64
            ));
            progress.inc(1);
        }
        let seconds = start.elapsed().as_secs_f64();
        let val_accuracy = match self.val.clone() {
            Some(val) => Some(self.accuracy(&val)?),
            None => None,
        };
        self.epoch += 1;
        let seen_f = seen.max(1) as f64;
        Ok(Ok(EpochMetrics {
            epoch: self.epoch,
            train_loss: loss_sum / seen_f,
            train_accuracy: correct as f64 / seen_f,
            val_accuracy,
            lr,
            images_per_s: seen as f64 / seconds,
            seconds,
        }))
    }

    /// Top-1 accuracy on `loader` in eval mode, with the EMA weights and statistics when there
    /// are any (the model a checkpoint serves).
    pub fn accuracy(&mut self, loader: &Loader) -> Result<f64> {
        let tensors = self.net.tensors();
        if let Some(ema) = &mut self.ema {
            ema.swap(&tensors)?;
        }
        let result = accuracy(&self.net, loader);
        if let Some(ema) = &mut self.ema {
            ema.swap(&tensors)?;
        }
        result
    }

    /// The tensors a checkpoint serves: the EMA's when there is one, else the model's own.
    pub fn served_state(&self) -> Result<Vec<(String, Tensor)>> {
        match &self.ema {
            Some(ema) => ema.tensors(&self.net.tensors()),
            None => Ok(self.net.state()),
        }
    }
}

/// Top-1 accuracy of `net` over all of `loader`, through the frozen network that is served and
/// timed ([`MixNet::eval_net`], folded once here from the weights as they are now).
pub fn accuracy(net: &MixNet, loader: &Loader) -> Result<f64> {
    let frozen = net.eval_net()?;
    let (mut correct, mut seen) = (0usize, 0usize);
    for (x, y) in loader.eval() {
        correct += top1_correct(&crate::on_pool(|| frozen.forward(&x))?, &y)?;
        seen += y.dim(0)?;
    }
    Ok(correct as f64 / seen.max(1) as f64)
}

/// Whether training reports progress as one stderr line per epoch: where no terminal shows the
/// bar (a batch job, a pipe), unless `quiet`.
pub fn epoch_lines(quiet: bool) -> bool {
    !quiet && !std::io::stderr().is_terminal()
}

/// A progress bar for epochs of training (hidden when stderr is not a terminal or `quiet`).
pub fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || epoch_lines(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] step {pos}/{len} ETA {eta}").expect("valid template");
    bar.set_style(style.progress_chars("=> "));
    bar
}
