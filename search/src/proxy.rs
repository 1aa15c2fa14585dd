//! The real evaluator: proxy training on held-out validation data (evaluator crate) plus the
//! latency of the full network at the target setting.
//!
//! Latency is obtained in a child `nas latency` process because the target is one thread
//! (as the paper timed one phone core) while training uses all of this process's threads, and
//! a process's thread count is fixed at its first tensor operation. The child predicts from the
//! machine's lookup table (measuring and adding any part it lacks), or measures.

use std::path::{Path, PathBuf};
use std::process::Command;

use evaluator::train::prepared::PreparedData;
use evaluator::train::proxy::{proxy_evaluate, ProxyConfig};
use serde::{Deserialize, Serialize};
use space::{Arch, SearchSpace};

use crate::evaluate::{Evaluation, Evaluator, TrialSpec};

/// How the latency of a candidate is obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySetting {
    /// `predict` (lookup table, default) or `measure`.
    pub method: String,
    pub threads: usize,
    pub resolution: usize,
    /// A table file other than the per-machine cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<PathBuf>,
}

impl Default for LatencySetting {
    fn default() -> Self {
        Self { method: "predict".into(), threads: 1, resolution: 224, table: None }
    }
}

pub struct ProxyEvaluator {
    pub data: PreparedData,
    pub proxy: ProxyConfig,
    pub latency: LatencySetting,
    /// The `nas` binary that answers latency queries.
    pub nas: PathBuf,
    /// Where candidate architectures are written for the child process.
    pub scratch: PathBuf,
}

impl ProxyEvaluator {
    /// Latency of `trial`'s architecture from a child `nas latency` process.
    pub fn latency(&self, trial: &TrialSpec) -> Result<(f64, String), String> {
        let file = self.scratch.join(format!("trial-{}.json", trial.id));
        child_latency(&self.nas, &file, &trial.arch, &self.latency)
    }
}

/// Asks a child `nas latency` for the latency of `arch` (written to `file`, removed after) as
/// `setting` says; returns the time and whether it was `predicted` or `measured`.
pub fn child_latency(nas: &Path, file: &Path, arch: &Arch, setting: &LatencySetting) -> Result<(f64, String), String> {
    std::fs::write(file, arch.to_json()).map_err(|e| format!("{}: {e}", file.display()))?;
    let out = file_latency(nas, file, setting);
    let _ = std::fs::remove_file(file);
    out
}

/// The latency of the architecture file `file` from a child `nas latency --json`, whose thread
/// count (the target's) is independent of this process's training threads.
pub fn file_latency(nas: &Path, file: &Path, setting: &LatencySetting) -> Result<(f64, String), String> {
    let mut cmd = Command::new(nas);
    cmd.arg("latency").arg("--arch").arg(file).arg(format!("--{}", setting.method));
    cmd.args(["--threads", &setting.threads.to_string(), "--resolution", &setting.resolution.to_string()]);
    cmd.arg("--json");
    if let Some(t) = &setting.table {
        cmd.arg("--table").arg(t);
    }
    let out = cmd.output().map_err(|e| format!("running {}: {e}", nas.display()))?;
    if !out.status.success() {
        return Err(format!("latency of {}: {}", file.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("latency output {text:?}: {e}"))?;
    let found = match v.get("predicted") {
        Some(p) => p["ms"].as_f64().map(|ms| (ms, "predicted")),
        None => v["measured"]["median_ms"].as_f64().map(|ms| (ms, "measured")),
    };
    let (ms, source) = found.ok_or_else(|| format!("latency output without a time: {text}"))?;
    Ok((ms, source.to_string()))
}

/// The lowest latency the space allows, predicted from this machine's lookup table: the
/// space's cheapest settings in every row (first kernel set, expansion, SE and activation
/// options, fewest layers), with ungrouped and with grouped 1x1 convolutions.
pub fn fastest_in_space(space: &SearchSpace, setting: &LatencySetting) -> Result<f64, String> {
    let nas = std::env::current_exe().map_err(|e| format!("locating the nas binary: {e}"))?;
    let cheapest = vec![0; space.decisions.len()];
    let grouped: Vec<usize> = space
        .decisions
        .iter()
        .map(|d| match d.name.ends_with("groups") {
            true => d.options.len() - 1,
            false => 0,
        })
        .collect();
    let predict = LatencySetting { method: "predict".into(), ..setting.clone() };
    let mut fastest = f64::INFINITY;
    for (i, point) in [cheapest, grouped].iter().enumerate() {
        let arch = space.decode(point).map_err(|e| e.to_string())?;
        let file = std::env::temp_dir().join(format!("mixnas-fastest-{}-{i}.json", std::process::id()));
        fastest = fastest.min(child_latency(&nas, &file, &arch, &predict)?.0);
    }
    Ok(fastest)
}

impl Drop for ProxyEvaluator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Evaluator for ProxyEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let (latency_ms, latency_source) = self.latency(trial)?;
        let r = proxy_evaluate(&trial.arch, &self.proxy, &self.data, trial.seed).map_err(|e| e.to_string())?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        let mut details = serde_json::Map::new();
        details.insert("train_loss".into(), r.train_loss.into());
        details.insert("images_per_s".into(), r.images_per_s.into());
        Ok(Evaluation {
            val_accuracy: r.val_accuracy,
            latency_ms,
            latency_source,
            macs: cost.macs,
            params: cost.params,
            train_seconds: r.train_seconds,
            details,
        })
    }

    fn name(&self) -> &str {
        "proxy"
    }
}

/// The `proxy` section of a search config: proxy training, data cut and latency source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    pub epochs: usize,
    pub batch: usize,
    pub max_lr: f64,
    /// Square side the proxy trains and scores at (`null`: the data's own size).
    pub resolution: Option<usize>,
    /// Training images per class taken from the data (before the validation hold-out).
    pub train_per_class: Option<usize>,
    /// Validation images per class held out of them.
    pub val_per_class: Option<usize>,
    pub latency: LatencySetting,
}

impl Default for ProxySettings {
    fn default() -> Self {
        let p = ProxyConfig::default();
        Self {
            epochs: p.epochs,
            batch: p.batch,
            max_lr: p.max_lr,
            resolution: p.resolution,
            train_per_class: None,
            val_per_class: None,
            latency: LatencySetting::default(),
        }
    }
}

impl ProxyEvaluator {
    /// Loads the data once and prepares the evaluator; errors are one line naming the input.
    pub fn from_settings(data: &str, settings: &serde_json::Value, seed: u64) -> Result<Self, String> {
        let s: ProxySettings =
            serde_json::from_value(settings.clone()).map_err(|e| format!("search config: proxy: {e}"))?;
        let spec = evaluator::train::prepared::DataSpec {
            source: data.to_string(),
            train_per_class: s.train_per_class,
            val_per_class: s.val_per_class,
            augment: None,
            seed,
        };
        let data = PreparedData::load(&spec).map_err(|e| e.to_string())?;
        let nas = std::env::current_exe().map_err(|e| format!("locating the nas binary: {e}"))?;
        let scratch = std::env::temp_dir().join(format!("mixnas-search-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let proxy = ProxyConfig { epochs: s.epochs, batch: s.batch, max_lr: s.max_lr, resolution: s.resolution };
        Ok(Self { data, proxy, latency: s.latency, nas, scratch })
    }
}
