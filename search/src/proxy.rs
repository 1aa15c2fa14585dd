//! The real evaluator: proxy training on held-out validation data (evaluator crate) plus the
//! latency of the full network at the target setting.
//!
//! Latency is obtained in a child `nas latency` process because the target is one thread
//! (as the paper timed one phone core) while training uses all of this process's threads, and
//! a process's thread count is fixed at its first tensor operation. The child predicts from the
//! machine's lookup table (measuring and adding any part it lacks), or measures.

use std::path::PathBuf;
use std::process::Command;

use evaluator::train::fit::{proxy_evaluate, PreparedData, ProxyConfig};
use serde::{Deserialize, Serialize};

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
        std::fs::write(&file, trial.arch.to_json()).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut cmd = Command::new(&self.nas);
        cmd.arg("latency").arg("--arch").arg(&file).arg(format!("--{}", self.latency.method));
        cmd.args([
            "--threads",
            &self.latency.threads.to_string(),
            "--resolution",
            &self.latency.resolution.to_string(),
        ]);
        cmd.arg("--json");
        if let Some(t) = &self.latency.table {
            cmd.arg("--table").arg(t);
        }
        let out = cmd.output().map_err(|e| format!("running {}: {e}", self.nas.display()))?;
        let _ = std::fs::remove_file(&file);
        if !out.status.success() {
            return Err(format!("latency: {}", String::from_utf8_lossy(&out.stderr).trim()));
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
        let spec = evaluator::train::fit::DataSpec {
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
        let proxy = ProxyConfig { epochs: s.epochs, batch: s.batch, max_lr: s.max_lr };
        Ok(Self { data, proxy, latency: s.latency, nas, scratch })
    }
}
