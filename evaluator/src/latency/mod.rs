//! Latency of an architecture on this machine at the target setting (224x224, batch 1, this
//! process's threads): measured ([`measure`]), or predicted from a per-part lookup table built on
//! the same machine ([`TablePredictor`], FBNet / nn-Meter style) and checked against measurement
//! ([`validate()`]). A process whose pool has another size than the target's asks through a
//! [`LatencyService`].
//!
//! The predictor is a table, not a learned regressor: a table is exact for the parts it has
//! seen, needs no training data, is rebuilt in minutes when the kernels change, and its error is
//! reported against measurement rather than assumed.
//!
//! Threads: candle's CPU ops and our rayon kernels share rayon's global pool, sized from
//! `RAYON_NUM_THREADS` when first used. A measurement or table is therefore only valid for the
//! thread count this process started with ([`threads`]); to measure at T threads, start the
//! process with `RAYON_NUM_THREADS=T` (the `nas` CLI sets it from `--threads` before any candle
//! work). Tables are keyed by that count, and by the CPU, mixnas version, resolution and batch.
//!
//! Another device: a table built on it (an ARM board, a phone's Linux userland) and copied here
//! predicts that device's latencies ([`DeviceTable`]); nothing about this machine enters them.

mod build;
mod cpu;
mod device;
pub mod measure;
mod nominal;
mod parts;
mod predict;
mod service;
mod speed;
mod table;
mod validate;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use space::Arch;

pub use build::{build_table, sample_archs, space_parts, BuildConfig, BuildReport, Progress, SpaceParts};
pub use device::DeviceTable;
pub use measure::{measure, MeasureConfig, Measurement};
pub use nominal::{Readings, FASTEST};
pub use parts::{parts, KeyedPart, Part};
pub use predict::{fit, Prediction, TablePredictor};
pub use service::{predict_from_file, LatencyMethod, LatencyRequest, LatencyService, LatencySetting};
pub use speed::{Relative, SpeedNow, SpeedReference};
pub use table::{Fit, Machine, Table, TABLE_FORMAT};
pub use validate::{accuracy, loadavg, validate, Accuracy, Sample, ValidationReport};

/// Threads of this process's compute pool: what every measurement in it runs on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// How the search gets an architecture's latency.
pub enum LatencyModel {
    /// Measure every architecture: exact for this process, seconds each at 224.
    Measured(MeasureConfig),
    /// Predict from a lookup table: milliseconds each once the table holds the parts.
    Table(Box<TablePredictor>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencySource {
    Measured,
    Predicted,
}

impl LatencySource {
    /// The word stored in an architecture's provenance (`latency_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            LatencySource::Measured => "measured",
            LatencySource::Predicted => "predicted",
        }
    }
}

/// An architecture's latency and how it was obtained; also what a latency child process
/// answers (see [`LatencyService`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub ms: f64,
    pub source: LatencySource,
    pub resolution: usize,
    pub threads: usize,
    /// The spread, when measured.
    pub measurement: Option<Measurement>,
    /// The table sum and fit, when predicted.
    pub prediction: Option<Prediction>,
}

/// The latency of `arch` under `model`.
pub fn latency(arch: &Arch, model: &LatencyModel) -> Result<Latency, LatencyError> {
    match model {
        LatencyModel::Measured(cfg) => {
            let m = measure(arch, cfg)?;
            let (ms, source, resolution, threads) = (m.median_ms, LatencySource::Measured, cfg.resolution, m.threads);
            Ok(Latency { ms, source, resolution, threads, measurement: Some(m), prediction: None })
        }
        LatencyModel::Table(t) => {
            let p = t.predict(arch)?;
            let resolution = t.network_config().resolution;
            let source = LatencySource::Predicted;
            Ok(Latency { ms: p.ms, source, resolution, threads: threads(), measurement: None, prediction: Some(p) })
        }
    }
}

/// Why a latency could not be had. Displays as one line.
#[derive(Debug)]
pub enum LatencyError {
    /// A table file keyed to another machine, thread count, version or input shape.
    Mismatch { path: PathBuf, file: Box<Machine>, here: Box<Machine> },
    /// A table file that could not be read or written.
    File { path: PathBuf, message: String },
    /// The search space could not produce an architecture.
    Space(String),
    /// Building or running a network failed.
    Run(candle_core::Error),
}

impl fmt::Display for LatencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyError::Mismatch { path, file, here } => write!(
                f,
                "{}: latency table is for {}, but this is {}; not using it (rebuild it with `nas latency --build-table --table {}`)",
                path.display(),
                file.describe(),
                here.describe(),
                path.display()
            ),
            LatencyError::File { path, message } => write!(f, "{}: {message}", path.display()),
            LatencyError::Space(m) => write!(f, "search space: {m}"),
            LatencyError::Run(e) => write!(f, "running a network: {}", e.to_string().replace('\n', " ")),
        }
    }
}

impl std::error::Error for LatencyError {}

impl From<candle_core::Error> for LatencyError {
    fn from(e: candle_core::Error) -> Self {
        LatencyError::Run(e)
    }
}
