//! Batches as candle tensors, prepared on a background thread while the model trains.
//!
//! A worker thread builds batches in order and hands them over through a bounded channel, so it
//! runs at most `prefetch` batches ahead. Every random choice comes from a stream derived from
//! `(seed, epoch)` for the order and `(seed, epoch, position)` for each sample's crop and flip,
//! never from shared state, so an epoch's batches are bit-identical however the threads are
//! scheduled.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};

use super::rng::{derive, SplitMix64};
use super::transform::write_sample;
use super::{resize_image, Augment, Dataset, Normalize, Resize, Shape};

/// Keeps the augmentation streams apart from the epoch-order streams of the same seed.
const AUGMENT_SALT: u64 = 0x6175_676d_656e_7421;

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Seeds the per-epoch order and the augmentation.
    pub seed: u64,
    /// Applied by [`Loader::epoch`] only; [`Loader::eval`] never augments.
    pub augment: Augment,
    /// Resample every image before augmentation; the crop pad is in output pixels.
    pub resize: Option<Resize>,
    /// Skip a last, smaller training batch (batch-norm statistics of a tiny batch are noise).
    /// [`Loader::eval`] always keeps it.
    pub drop_last: bool,
    /// Batches the worker may prepare ahead of the consumer.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig { batch_size: 64, seed: 0, augment: Augment::NONE, resize: None, drop_last: true, prefetch: 4 }
    }
}

/// Turns a [`Dataset`] into batches `(x, y)`: `x` f32 `[B, C, H, W]` normalised, `y` u32 `[B]`,
/// both on the CPU.
#[derive(Clone, Debug)]
pub struct Loader {
    data: Arc<Dataset>,
    norm: Arc<Normalize>,
    cfg: LoaderConfig,
}

impl Loader {
    /// `norm` should come from the training split ([`Normalize::from_dataset`]) for every loader.
    ///
    /// # Panics
    /// If `batch_size` is 0 or `norm` has a different channel count than `data`.
    pub fn new(data: impl Into<Arc<Dataset>>, norm: Normalize, cfg: LoaderConfig) -> Loader {
        let data = data.into();
        assert!(cfg.batch_size > 0, "batch size must be positive");
        let channels = data.shape().channels;
        assert!(
            norm.mean.len() == channels && norm.std.len() == channels,
            "normalisation is not for {channels} channels"
        );
        Loader { data, norm: Arc::new(norm), cfg }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// The shape of each image in a batch, after any resize.
    pub fn output_shape(&self) -> Shape {
        let shape = self.data.shape();
        self.cfg.resize.map_or(shape, |r| r.output(shape))
    }

    /// Batches per training epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.data.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// One training epoch: a seeded shuffle of all samples, augmented. The same `(seed, epoch)`
    /// always gives the same batches.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        SplitMix64::new(derive(self.cfg.seed, epoch)).shuffle(&mut order);
        order.truncate(self.batches_per_epoch() * self.cfg.batch_size);
        let aug_seed = derive(self.cfg.seed ^ AUGMENT_SALT, epoch);
        self.spawn(order, self.cfg.augment, aug_seed)
    }

    /// All samples in data-set order, unaugmented, the last batch possibly smaller.
    pub fn eval(&self) -> Batches {
        self.spawn((0..self.data.len()).collect(), Augment::NONE, 0)
    }

    fn spawn(&self, order: Vec<usize>, augment: Augment, aug_seed: u64) -> Batches {
        let remaining = order.len().div_ceil(self.cfg.batch_size);
        let (tx, rx) = sync_channel(self.cfg.prefetch.max(1));
        let job = BatchJob { loader: self.clone(), augment, aug_seed };
        let worker = std::thread::Builder::new()
            .name("mixnas-data".into())
            .spawn(move || {
                for (i, chunk) in order.chunks(job.loader.cfg.batch_size).enumerate() {
                    // A send fails only when the consumer dropped the iterator: stop quietly.
                    if tx.send(job.build(chunk, i * job.loader.cfg.batch_size)).is_err() {
                        return;
                    }
                }
            })
            .expect("cannot spawn the data loader thread");
        Batches { rx: Some(rx), worker: Some(worker), remaining }
    }
}

/// What the worker thread needs to build batches.
struct BatchJob {
    loader: Loader,
    augment: Augment,
    aug_seed: u64,
}

impl BatchJob {
    /// The batch of `indices`, whose first sample is at `position` in the epoch's order.
    fn build(&self, indices: &[usize], position: usize) -> (Tensor, Tensor) {
        let (data, resize) = (&self.loader.data, self.loader.cfg.resize);
        let shape = self.loader.output_shape();
        let mut x = vec![0f32; indices.len() * shape.numel()];
        for (k, (&i, out)) in indices.iter().zip(x.chunks_exact_mut(shape.numel())).enumerate() {
            let resized = resize.map(|r| resize_image(data.image(i), data.shape(), r));
            let img = resized.as_deref().unwrap_or(data.image(i));
            let mut rng = SplitMix64::new(derive(self.aug_seed, (position + k) as u64));
            write_sample(img, shape, self.augment, &mut rng, &self.loader.norm, out);
        }
        let y: Vec<u32> = indices.iter().map(|&i| data.labels()[i]).collect();
        let dims = (indices.len(), shape.channels, shape.height, shape.width);
        // Sizes are computed from the same numbers as the buffers, so CPU tensors cannot fail.
        let x = Tensor::from_vec(x, dims, &Device::Cpu).expect("batch buffer matches its shape");
        let y = Tensor::from_vec(y, indices.len(), &Device::Cpu).expect("label buffer matches its shape");
        (x, y)
    }
}

/// The batches of one pass, arriving from the worker thread. Dropping it early stops the worker.
pub struct Batches {
    rx: Option<Receiver<(Tensor, Tensor)>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Iterator for Batches {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.rx.as_ref()?.recv() {
            Ok(batch) => {
                self.remaining -= 1;
                Some(batch)
            }
            // The worker hung up early, so it panicked: re-raise its panic here.
            Err(_) => {
                if let Some(Err(panic)) = self.worker.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        // Hang up first so a worker blocked on a full channel wakes, fails its send and exits.
        drop(self.rx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize, shape: Shape) -> Dataset {
        let pixels = (0..n).flat_map(|i| vec![i as u8; shape.numel()]).collect();
        let labels = (0..n as u32).map(|i| i % 3).collect();
        Dataset::new(pixels, labels, ["a", "b", "c"].map(String::from).to_vec(), shape)
    }

    fn collect(batches: impl Iterator<Item = (Tensor, Tensor)>) -> Vec<(Vec<f32>, Vec<u32>)> {
        batches.map(|(x, y)| (x.flatten_all().unwrap().to_vec1().unwrap(), y.to_vec1().unwrap())).collect()
    }

    fn augmenting(seed: u64) -> LoaderConfig {
        LoaderConfig { batch_size: 8, seed, augment: Augment { crop_pad: 2, hflip: true }, ..Default::default() }
    }

    #[test]
    fn batches_have_the_documented_shapes_and_types() {
        let shape = Shape::new(3, 6, 5);
        let loader = Loader::new(numbered(20, shape), Normalize::identity(3), augmenting(0));
        let batches: Vec<_> = loader.epoch(0).collect();
        assert_eq!(batches.len(), 2);
        let (x, y) = &batches[0];
        assert_eq!((x.dims(), x.dtype()), (&[8, 3, 6, 5][..], candle_core::DType::F32));
        assert_eq!((y.dims(), y.dtype()), (&[8][..], candle_core::DType::U32));
    }

    #[test]
    fn epochs_are_deterministic_per_seed_and_shuffled() {
        let data = Arc::new(numbered(40, Shape::new(1, 4, 4)));
        let loader = |seed| Loader::new(data.clone(), Normalize::identity(1), augmenting(seed));
        let first = collect(loader(5).epoch(3));
        // A slow consumer lets the worker run ahead; the result must not change.
        let slow = collect(loader(5).epoch(3).inspect(|_| std::thread::sleep(std::time::Duration::from_millis(5))));
        assert_eq!(first, slow);
        assert_ne!(first, collect(loader(5).epoch(4)));
        assert_ne!(first, collect(loader(6).epoch(3)));
        let labels: Vec<u32> = first.iter().flat_map(|b| b.1.clone()).collect();
        assert_ne!(labels, (0..40).map(|i| i % 3).collect::<Vec<u32>>());
    }

    #[test]
    fn eval_is_ordered_complete_and_unaugmented() {
        let data = numbered(10, Shape::new(1, 2, 2));
        let cfg = LoaderConfig { batch_size: 4, ..augmenting(1) };
        let loader = Loader::new(data, Normalize::identity(1), cfg);
        let batches = collect(loader.eval());
        assert_eq!(batches.iter().map(|b| b.1.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
        let firsts: Vec<f32> = batches.iter().flat_map(|b| b.0.iter().step_by(4).map(|v| v * 255.0)).collect();
        assert_eq!(firsts.iter().map(|v| v.round() as usize).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert_eq!(loader.epoch(0).len(), 2);
    }

    #[test]
    fn resize_changes_the_output_shape() {
        let resize = Some(Resize { height: 9, width: 7, interp: crate::data::Interp::Bilinear });
        let cfg = LoaderConfig { resize, ..augmenting(0) };
        let loader = Loader::new(numbered(8, Shape::new(1, 4, 4)), Normalize::identity(1), cfg);
        assert_eq!(loader.epoch(0).next().unwrap().0.dims(), &[8, 1, 9, 7]);
    }

    #[test]
    fn dropping_early_stops_the_worker() {
        let cfg = LoaderConfig { batch_size: 1, prefetch: 1, ..augmenting(0) };
        let loader = Loader::new(numbered(100, Shape::new(1, 2, 2)), Normalize::identity(1), cfg);
        let mut batches = loader.epoch(0);
        batches.next();
        drop(batches); // would hang here if the worker stayed blocked on the full channel
    }
}
