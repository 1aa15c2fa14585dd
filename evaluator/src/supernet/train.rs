//! `nas supernet train`: the supernet trained by uniform single-path sampling (each step one
//! point drawn uniformly from the space, Single-Path One-Shot), into a folder written after
//! every epoch and atomically: `supernet.safetensors` (the shared tensors, optimiser buffers
//! under `optim/`, the record in the header), a readable `supernet.json` copy of the record, and
//! `metrics.json`. Every draw (data order, augmentation, paths) follows from `(seed, epoch)`, so
//! a run killed at any moment resumes from its last whole epoch and ends where an unbroken one
//! would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Error, Result, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use space::SearchSpace;

use super::SuperNet;
use crate::checkpoint::{check_shapes, load_tensors, save_tensors, write_atomic};
use crate::train::loss::{cross_entropy, top1_correct};
use crate::train::optim::{Optimizer, OptimizerConfig, OptimizerState, SgdConfig};
use crate::train::prepared::{DataRecord, PreparedData};
use crate::train::run_dir::{read_metrics, write_metrics, Metrics};
use crate::train::schedule::LrSchedule;
use crate::train::trainer::{epoch_lines, progress_bar, EpochMetrics};

pub const SUPERNET_FORMAT: &str = "mixnas.supernet/1";
const RECORD_KEY: &str = "mixnas.supernet";

/// Everything that decides a supernet's training besides the space and the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupernetConfig {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    pub label_smoothing: f64,
    pub seed: u64,
    /// Square side of the training images (and of every candidate scored on it).
    pub resolution: usize,
}

impl SupernetConfig {
    /// SGD (momentum 0.9, Nesterov, weight decay 5e-4) under a one-cycle schedule peaking at
    /// `max_lr`, label smoothing 0.1: the short-run recipe of the proxies.
    pub fn one_cycle(epochs: usize, batch: usize, max_lr: f64, resolution: usize, seed: u64) -> Self {
        let sgd = SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 5e-4 };
        let schedule = LrSchedule::one_cycle(max_lr, epochs as f64);
        Self { epochs, batch, optimizer: OptimizerConfig::Sgd(sgd), schedule, label_smoothing: 0.1, seed, resolution }
    }
}

/// The checkpoint record: the space, the data and the state of training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupernetRecord {
    pub format: String,
    /// The space file as read, and where it came from.
    pub space: String,
    pub space_source: String,
    pub classes: usize,
    pub in_channels: usize,
    /// Epochs completed.
    pub epoch: usize,
    pub config: SupernetConfig,
    pub optimizer: OptimizerState,
    pub data: DataRecord,
}

impl SupernetRecord {
    /// The space the supernet covers, with the data's class count.
    pub fn space(&self) -> Result<SearchSpace> {
        let space = SearchSpace::parse(self.space.as_bytes(), &self.space_source).map_err(Error::wrap)?;
        Ok(space.with_classes(self.classes))
    }
}

pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("supernet.safetensors")
}

fn at(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {e}", path.display()))
}

/// A supernet read back from its folder, with every tensor in the file.
pub struct SupernetCheckpoint {
    pub record: SupernetRecord,
    pub tensors: HashMap<String, Tensor>,
}

impl SupernetCheckpoint {
    /// Reads `DIR/supernet.safetensors`; errors name the file.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = checkpoint_path(dir);
        if !path.exists() {
            return Err(at(&path, "no supernet here (expected a folder written by `nas supernet train`)"));
        }
        let (tensors, meta) = load_tensors(&path)?;
        let json = meta.get(RECORD_KEY).ok_or_else(|| at(&path, "not a mixnas supernet (no record in its header)"))?;
        let record: SupernetRecord = serde_json::from_str(json).map_err(|e| at(&path, e))?;
        if record.format != SUPERNET_FORMAT {
            return Err(at(&path, format!("format {:?}; this mixnas reads {SUPERNET_FORMAT:?}", record.format)));
        }
        Ok(Self { record, tensors })
    }

    /// The supernet with these weights.
    pub fn network(&self, dir: &Path) -> Result<SuperNet> {
        let r = &self.record;
        let net = SuperNet::new(&r.space()?, r.in_channels, r.config.resolution, r.config.seed)?;
        let expected: Vec<_> = net.named().iter().map(|n| (n.name.clone(), n.var.dims().to_vec())).collect();
        let weights: HashMap<String, Tensor> =
            self.tensors.iter().filter(|(k, _)| !k.contains('/')).map(|(k, v)| (k.clone(), v.clone())).collect();
        check_shapes(&expected, &weights).map_err(|e| at(&checkpoint_path(dir), e))?;
        for n in net.named() {
            crate::model::params::assign(&n.var, &weights[&n.name], &n.name)?;
        }
        Ok(net)
    }

    /// Tensors under `optim/`, without the prefix.
    fn optimizer_buffers(&self) -> HashMap<String, Tensor> {
        let strip = |(k, v): (&String, &Tensor)| k.strip_prefix("optim/").map(|n| (n.to_string(), v.clone()));
        self.tensors.iter().filter_map(strip).collect()
    }
}

fn save(dir: &Path, net: &SuperNet, optimizer: &Optimizer, record: &SupernetRecord) -> Result<()> {
    let (state, buffers) = optimizer.export()?;
    let record = SupernetRecord { optimizer: state, ..record.clone() };
    let mut tensors: Vec<(String, Tensor)> =
        net.named().iter().map(|n| (n.name.clone(), n.var.as_tensor().clone())).collect();
    tensors.extend(buffers.into_iter().map(|(n, v)| (format!("optim/{n}"), v)));
    let json = serde_json::to_string_pretty(&record).map_err(Error::wrap)?;
    save_tensors(&checkpoint_path(dir), &tensors, Some(HashMap::from([(RECORD_KEY.to_string(), json.clone())])))?;
    write_atomic(&dir.join("supernet.json"), (json + "\n").as_bytes()).map_err(|e| at(dir, e))
}

/// Trains a supernet over `space` on `data` into `dir`; with `resume`, continues the one there
/// (same space, data and config required).
pub fn train_to_dir(
    space: &SearchSpace,
    data: &PreparedData,
    cfg: &SupernetConfig,
    dir: &Path,
    resume: bool,
    quiet: bool,
) -> Result<Metrics> {
    let classes = data.train.num_classes();
    let in_channels = data.train_loader(1, 0, Some(cfg.resolution)).output_shape().channels;
    let space = space.clone().with_classes(classes);
    let mut net = SuperNet::new(&space, in_channels, cfg.resolution, cfg.seed)?;
    let mut optimizer = Optimizer::new(net.trainable(), cfg.optimizer)?;
    let mut record = SupernetRecord {
        format: SUPERNET_FORMAT.into(),
        space: space.text.clone(),
        space_source: space.source.clone(),
        classes,
        in_channels,
        epoch: 0,
        config: cfg.clone(),
        optimizer: optimizer.export()?.0,
        data: data.record.clone(),
    };
    let mut metrics = Metrics::default();
    let path = checkpoint_path(dir);
    match (resume, path.exists()) {
        (true, true) => {
            let ckpt = SupernetCheckpoint::read(dir)?;
            let r = &ckpt.record;
            if r.config != *cfg {
                return Err(at(&path, "the supernet was trained with another configuration"));
            }
            if r.data.fingerprint != data.record.fingerprint {
                return Err(at(&path, "the supernet was trained on other data"));
            }
            if r.space != space.text {
                return Err(at(&path, format!("the supernet covers another space than {}", space.source)));
            }
            net = ckpt.network(dir)?;
            optimizer = Optimizer::new(net.trainable(), cfg.optimizer)?;
            optimizer.import(&r.optimizer, &ckpt.optimizer_buffers())?;
            record.epoch = r.epoch;
            metrics = read_metrics(dir)?;
            metrics.epochs.truncate(r.epoch);
        }
        (false, true) => {
            return Err(at(&path, "a supernet is here already: pass --resume to continue it, or choose another --out"))
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
    let train = data.train_loader(cfg.batch, cfg.seed, Some(cfg.resolution));
    let bar = progress_bar(quiet);
    while record.epoch < cfg.epochs {
        let m = run_epoch(&net, &mut optimizer, &train, cfg, record.epoch, &bar)?;
        if epoch_lines(quiet) {
            eprintln!("{}", m.line(cfg.epochs));
        }
        metrics.epochs.push(m);
        record.epoch += 1;
        // Metrics first: a kill between the writes leaves an extra epoch that a resume trims.
        write_metrics(dir, &metrics)?;
        save(dir, &net, &optimizer, &record)?;
    }
    bar.finish_and_clear();
    metrics.wall_seconds = Some(metrics.epochs.iter().map(|e| e.seconds).sum());
    write_metrics(dir, &metrics)?;
    Ok(metrics)
}

/// One epoch: each step trains the path of one point drawn uniformly from the space.
fn run_epoch(
    net: &SuperNet,
    optimizer: &mut Optimizer,
    train: &crate::data::Loader,
    cfg: &SupernetConfig,
    epoch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<EpochMetrics> {
    let steps = train.batches_per_epoch() as u64;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0, 0usize, 0usize, 0.0);
    let start = Instant::now();
    bar.set_length(steps);
    bar.set_position(0);
    for (step, (x, y)) in train.epoch(epoch as u64).enumerate() {
        lr = cfg.schedule.lr_at(epoch as u64 * steps + step as u64, steps);
        let choices = net.space().sample(&mut rng);
        let (logits, loss) = crate::on_pool(|| -> Result<(Tensor, f64)> {
            let logits = net.forward_train(&x, &choices)?;
            let loss = cross_entropy(&logits, &y, cfg.label_smoothing)?;
            let value = loss.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                candle_core::bail!(
                    "the loss became {value} at epoch {} step {step}; the last checkpoint stays",
                    epoch + 1
                )
            }
            optimizer.step(&loss.backward()?, lr)?;
            Ok((logits, value))
        })?;
        let n = y.dim(0)?;
        loss_sum += loss * n as f64;
        correct += top1_correct(&logits, &y)?;
        seen += n;
        let rate = seen as f64 / start.elapsed().as_secs_f64();
        bar.set_message(format!("epoch {} loss {:.4} {rate:.0} img/s", epoch + 1, loss_sum / seen as f64));
        bar.inc(1);
    }
    let seconds = start.elapsed().as_secs_f64();
    let seen_f = seen.max(1) as f64;
    Ok(EpochMetrics {
        epoch: epoch + 1,
        train_loss: loss_sum / seen_f,
        train_accuracy: correct as f64 / seen_f,
        val_accuracy: None,
        lr,
        images_per_s: seen as f64 / seconds,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supernet::score::SupernetScorer;
    use crate::train::fixtures::small_data;
    use testkit::float::max_abs_diff;

    fn macro_space() -> SearchSpace {
        SearchSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json")).unwrap()
    }

    /// A run killed after its first epoch resumes to the weights an unbroken run ends with; the
    /// trained supernet then scores candidates deterministically, and refuses a non-point.
    #[test]
    fn a_resumed_supernet_ends_where_an_unbroken_one_ends_and_scores_candidates() {
        let (data, space) = (small_data(), macro_space());
        let cfg = SupernetConfig::one_cycle(2, 16, 0.05, 32, 4);
        let whole = tempfile::tempdir().unwrap();
        let a = train_to_dir(&space, &data, &cfg, whole.path(), false, true).unwrap();
        let err = train_to_dir(&space, &data, &cfg, whole.path(), false, true).err().unwrap().to_string();
        assert!(err.contains("a supernet is here already: pass --resume"), "{err}");

        let broken = tempfile::tempdir().unwrap();
        let first = SupernetConfig { epochs: 1, ..cfg.clone() };
        train_to_dir(&space, &data, &first, broken.path(), false, true).unwrap();
        // Stopped after epoch 1 of the 2-epoch run: its record, as the kill leaves it.
        let mut ckpt = SupernetCheckpoint::read(broken.path()).unwrap();
        ckpt.record.config = cfg.clone();
        let net = ckpt.network(broken.path()).unwrap();
        let mut optimizer = Optimizer::new(net.trainable(), cfg.optimizer).unwrap();
        optimizer.import(&ckpt.record.optimizer, &ckpt.optimizer_buffers()).unwrap();
        save(broken.path(), &net, &optimizer, &ckpt.record).unwrap();
        let err = train_to_dir(&space, &data, &first, broken.path(), true, true).err().unwrap().to_string();
        assert!(err.contains("another configuration"), "{err}");
        let b = train_to_dir(&space, &data, &cfg, broken.path(), true, true).unwrap();
        assert_eq!(b.epochs.len(), 2);
        assert_eq!(a.epochs[1].train_loss, b.epochs[1].train_loss);
        let (wa, wb) =
            (SupernetCheckpoint::read(whole.path()).unwrap(), SupernetCheckpoint::read(broken.path()).unwrap());
        for name in ["rows.0.0.dw.weight", "rows.5.0.conv.weight", "classifier.weight"] {
            assert_eq!(max_abs_diff(&wa.tensors[name], &wb.tensors[name]), 0.0, "{name}");
        }

        let net = wa.network(whole.path()).unwrap();
        let scorer = SupernetScorer::new(net, wa.record.clone(), &data, 2);
        // 200 training images make one whole batch of 128 (the loader drops a partial one).
        assert_eq!((scorer.calibration_images(), scorer.val_images), (128, data.val.len()));
        let arch = |code: &str| {
            space
                .clone()
                .with_classes(10)
                .decode(&code.bytes().map(|b| (b - b'0') as usize).collect::<Vec<_>>())
                .unwrap()
        };
        let (s1, s2) = (scorer.score(&arch("12012021")).unwrap(), scorer.score(&arch("12012021")).unwrap());
        assert_eq!((s1.val_accuracy, s1.val_loss), (s2.val_accuracy, s2.val_loss));
        assert!((0.0..=1.0).contains(&s1.val_accuracy) && s1.val_loss.is_finite() && s1.val_loss > 0.0, "{s1:?}");
        let other = scorer.score(&arch("22222222")).unwrap();
        assert_ne!(other.val_loss, s1.val_loss);
        let err = scorer.score(&space::presets::mixnet_s()).unwrap_err().to_string();
        assert!(err.contains("not a point of the supernet's space nas-bench-macro"), "{err}");
    }
}
