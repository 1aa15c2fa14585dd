//! The compute pool: one rayon pool per process, sized once, that every kernel runs on.

/// Fixes the number of CPU threads for this process: the kernels' rayon pool (and candle's,
/// for its matmul) read `RAYON_NUM_THREADS` once, at first use, so call this before any tensor
/// work.
/// Returns the count in force (the first call wins).
pub fn set_threads(threads: usize) -> usize {
    let threads = threads.max(1);
    // Once per process, not per environment: a flag in the environment would leak into child
    // processes (the search's `nas latency --threads 1`) and keep them at the parent's count.
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        // candle's CPU ops run on a second pool whose idle workers spin for a long time; next to
        // the kernels' rayon pool on few cores that spinning steals the cores (1.7x on 2 cores).
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "100");
        }
        // The hot ops are ours, on the rayon pool; candle's own ops (the backward's gradient
        // sums, residual adds) run on the calling thread. Splitting those across a second pool
        // made a 2-thread training step 10% slower (its workers and ours contend for the cores).
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    });
    rayon::current_num_threads()
}

/// Runs `work` on a thread of the compute pool and waits for it. Kernels called from outside the
/// pool hand every parallel loop to it and sleep until it finishes (two context switches per op,
/// hundreds per forward); called from inside, a one-thread pool runs them inline and a larger
/// one shares them by work stealing. Wrap whole forwards or training steps, never code that
/// waits on another thread's rayon work (with one thread that would deadlock).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}
