//! An experiment folder: `experiment.json` (the settings every run shares, checked on resume),
//! `runs.jsonl` (one fsynced line per finished (variant, seed) training, the source of truth),
//! `latency.jsonl` (one line per variant) and the summary derived from them, `results.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use space::Arch;

use super::{Experiment, Variant};
use search::results::{read_lines, write_or_check};

pub const CONFIG_FORMAT: &str = "mixnas.experiment/1";

/// Everything that decides a run's result except its seed. A folder keeps one configuration, so
/// a resumed experiment never mixes runs trained differently; more seeds may be added later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub format: String,
    pub experiment: Experiment,
    pub data: String,
    /// Training images per class before the validation hold-out; `None` = all.
    pub subset: Option<usize>,
    /// Test images per class accuracy is measured on; `None` = the whole test split.
    #[serde(default)]
    pub test_per_class: Option<usize>,
    /// Seed of the data subset and hold-out (the same images for every run).
    pub data_seed: u64,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// Square side images are resized to for training and scoring; `None` = as stored.
    pub resolution: Option<usize>,
    /// The network every variant rewrites (classes set to the data's).
    pub base: Arch,
}

impl ExperimentConfig {
    /// Writes `dir/experiment.json`, or checks that the one there is the same; the error names
    /// the first setting that differs.
    pub fn write_or_check(&self, dir: &Path) -> Result<(), String> {
        write_or_check(&dir.join("experiment.json"), self)
    }
}

/// One finished training, one line of `runs.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub variant: String,
    pub seed: u64,
    /// Accuracy on the data's test split; `None` when training failed (see `error`).
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub train_seconds: f64,
    pub images_per_s: f64,
    /// Unix seconds.
    pub finished_at: f64,
}

/// The latency of one variant, one line of `latency.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRecord {
    pub variant: String,
    pub ms: f64,
    /// `predicted` (lookup table) or `measured`.
    pub source: String,
    pub resolution: usize,
    pub threads: usize,
}

/// One variant in `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub name: String,
    pub series: Vec<String>,
    pub x: usize,
    pub kernels: String,
    pub params: u64,
    /// Multiply-adds at `results.cost_resolution`.
    pub macs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyRecord>,
    pub accuracy_mean: Option<f64>,
    /// Sample standard deviation over seeds (0 with one seed).
    pub accuracy_std: Option<f64>,
    pub accuracies: Vec<f64>,
    pub seeds: Vec<u64>,
    pub failed: usize,
    pub train_seconds: f64,
}

/// `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub experiment: Experiment,
    pub data: String,
    pub subset: Option<usize>,
    pub epochs: usize,
    pub resolution: Option<usize>,
    pub accuracy_on: String,
    pub cost_resolution: usize,
    pub base: String,
    pub classes: usize,
    pub variants: Vec<VariantResult>,
    /// Sum of the training times of the runs (not the wall time of this invocation).
    pub train_seconds: f64,
}

pub fn read_runs(dir: &Path) -> Result<Vec<RunRecord>, String> {
    read_lines(&dir.join("runs.jsonl"))
}

pub fn read_latencies(dir: &Path) -> Result<Vec<LatencyRecord>, String> {
    read_lines(&dir.join("latency.jsonl"))
}

/// Mean and sample standard deviation; `None` for no values.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (!values.is_empty()).then_some((mean, var.sqrt()))
}

/// One variant's summary from its runs (any seeds found) and latency.
pub fn summarise(v: &Variant, runs: &[RunRecord], latency: Option<&LatencyRecord>, cost_res: usize) -> VariantResult {
    let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.variant == v.name).collect();
    let ok: Vec<&RunRecord> = mine.iter().copied().filter(|r| r.accuracy.is_some()).collect();
    let accuracies: Vec<f64> = ok.iter().filter_map(|r| r.accuracy).collect();
    let stats = mean_std(&accuracies);
    let cost = space::cost(&v.arch, cost_res).total;
    let mut kernels: Vec<String> = Vec::new();
    for b in &v.arch.blocks {
        let k = b.kernels.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(".");
        if kernels.last() != Some(&k) {
            kernels.push(k);
        }
    }
    VariantResult {
        name: v.name.clone(),
        series: v.series.clone(),
        x: v.x,
        kernels: kernels.join(" "),
        params: cost.params,
        macs: cost.macs,
        latency: latency.cloned(),
        accuracy_mean: stats.map(|s| s.0),
        accuracy_std: stats.map(|s| s.1),
        accuracies,
        seeds: ok.iter().map(|r| r.seed).collect(),
        failed: mine.len() - ok.len(),
        train_seconds: mine.iter().map(|r| r.train_seconds).sum(),
    }
}

/// The latest latency record of each variant.
pub fn latest_latency(records: Vec<LatencyRecord>) -> BTreeMap<String, LatencyRecord> {
    records.into_iter().map(|r| (r.variant.clone(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[0.5, 0.7]).unwrap();
        assert!((m - 0.6).abs() < 1e-12 && (s - 0.02f64.sqrt()).abs() < 1e-12, "{m} {s}");
        assert_eq!(mean_std(&[0.4]), Some((0.4, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn a_folder_refuses_other_settings_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ExperimentConfig {
            format: CONFIG_FORMAT.into(),
            experiment: Experiment::Partition,
            data: "default".into(),
            subset: Some(20),
            test_per_class: None,
            data_seed: 0,
            epochs: 2,
            batch: 32,
            lr: 0.1,
            resolution: None,
            base: space::presets::mobilenetv2(),
        };
        cfg.write_or_check(dir.path()).unwrap();
        cfg.write_or_check(dir.path()).unwrap();
        let other = ExperimentConfig { epochs: 3, ..cfg };
        let e = other.write_or_check(dir.path()).unwrap_err();
        assert!(e.ends_with("experiment.json: epochs: this folder was run with 2, not 3; resume with the same settings or use another --out"), "{e}");
    }
}
