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

#[derive(Deserialize)]
struct LatencyLine {
    #[serde(alias = "predicted_ms")]
    ms: f64,
    source: String,
}

impl ProxyEvaluator {
    /// Latency of `trial`'s architecture from a child `nas latency` process.
    pub fn latency(&self, trial: &TrialSpec) -> Result<(f64, String), String> {
        let file = self.scratch.join(format!("trial-{}.json", trial.id));
        std::fs::write(&file, trial.arch.to_json()).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut cmd = Command::new(&self.nas);
        cmd.arg("latency").arg("--arch").arg(&file).arg(format!("--{}", self.latency.method));
        cmd.args(["--threads", &self.latency.threads.to_string(), "--resolution", &self.latency.resolution.to_string()]);
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
        let line: LatencyLine = serde_json::from_str(text.trim()).map_err(|e| format!("latency output {text:?}: {e}"))?;
        Ok((line.ms, line.source))
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
