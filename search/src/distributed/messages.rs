//! What travels through the broker, as JSON: trials, results and worker heartbeats, and the
//! check that lets a worker refuse a trial it cannot evaluate faithfully.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use evaluator::latency::LatencyService;

use crate::evaluate::{Evaluation, TrialEvaluator, TrialSpec};
use crate::proxy::ProxySettings;
use crate::setup::EvaluatorKind;

/// The version every trial is stamped with; a worker built from another version refuses it.
pub const MIXNAS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How to build the evaluator a trial needs: the run's evaluator, data and proxy settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSetup {
    pub evaluator: EvaluatorKind,
    pub data: String,
    pub proxy: ProxySettings,
    /// The run's seed (it cuts the validation hold-out).
    pub seed: u64,
}

impl EvalSetup {
    /// Builds the evaluator and the fingerprint of the data it uses (`none` for the surrogate).
    /// `data` replaces the data location (the same data may sit elsewhere on a worker).
    pub fn build(
        &self,
        data: Option<&str>,
        latency: &LatencyService,
    ) -> Result<(Arc<dyn TrialEvaluator>, String), String> {
        let built = self.evaluator.build(data.unwrap_or(&self.data), &self.proxy, self.seed, latency)?;
        Ok((built.evaluator, built.data_fingerprint))
    }
}

/// One trial on the work queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrialMessage {
    pub mixnas_version: String,
    /// Fingerprint of the proxy data the coordinator loaded (`none` for the surrogate).
    pub data_fingerprint: String,
    pub run_id: String,
    pub setup: EvalSetup,
    pub trial: TrialSpec,
}

impl TrialMessage {
    /// Why this worker (its version, and the fingerprint of the data it loaded for the trial's
    /// setup) must not evaluate the trial; `None` when it may.
    pub fn refusal(&self, worker_version: &str, worker_fingerprint: &str) -> Option<String> {
        let what = format!("trial {} of run {}", self.trial.id, self.run_id);
        if self.mixnas_version != worker_version {
            return Some(format!(
                "refusing {what}: it comes from mixnas {} but this worker is mixnas {worker_version} (hint: run the same build on coordinator and workers)",
                self.mixnas_version
            ));
        }
        if self.data_fingerprint != worker_fingerprint {
            return Some(format!(
                "refusing {what}: its data `{}` has fingerprint {} but this worker loaded {worker_fingerprint} (hint: give the worker the same data with --data DIR)",
                self.setup.data, self.data_fingerprint
            ));
        }
        None
    }
}

/// A worker's answer for one trial.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultMessage {
    pub run_id: String,
    pub trial_id: u64,
    /// Which worker evaluated it (for logs; not journalled).
    pub worker: String,
    pub result: Result<Evaluation, String>,
}

/// A worker's heartbeat, published every [`HEARTBEAT`](super::broker::HEARTBEAT).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub worker: String,
    pub concurrency: usize,
    pub busy: usize,
    /// The worker's latest refusal, so the coordinator can show why trials are not taken.
    pub refused: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(version: &str, fingerprint: &str) -> TrialMessage {
        let arch = space::presets::mixnet_s();
        TrialMessage {
            mixnas_version: version.into(),
            data_fingerprint: fingerprint.into(),
            run_id: "r1".into(),
            setup: EvalSetup {
                evaluator: EvaluatorKind::Proxy,
                data: "default".into(),
                proxy: ProxySettings::default(),
                seed: 1,
            },
            trial: TrialSpec { id: 7, arch, choices: vec![1, 2], seed: 9, threads: 1, epochs: Some(3) },
        }
    }

    #[test]
    fn a_worker_refuses_other_versions_and_other_data() {
        assert_eq!(message("0.1.0", "abc").refusal("0.1.0", "abc"), None);
        let v = message("0.0.9", "abc").refusal("0.1.0", "abc").unwrap();
        assert!(v.contains("trial 7 of run r1") && v.contains("mixnas 0.0.9") && v.contains("mixnas 0.1.0"), "{v}");
        let d = message("0.1.0", "abc").refusal("0.1.0", "def").unwrap();
        assert!(d.contains("fingerprint abc") && d.contains("loaded def"), "{d}");
    }

    #[test]
    fn trial_and_result_messages_round_trip() {
        let m = message(MIXNAS_VERSION, "none");
        let back: TrialMessage = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            (back.trial.id, back.trial.choices, back.trial.epochs, back.setup),
            (7, vec![1, 2], Some(3), m.setup)
        );
        let r = ResultMessage { run_id: "r1".into(), trial_id: 3, worker: "w".into(), result: Err("oom".into()) };
        let back: ResultMessage = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.result, Err("oom".to_string()));
    }

    #[test]
    fn the_surrogate_needs_no_data() {
        let setup = EvalSetup {
            evaluator: EvaluatorKind::Surrogate,
            data: "x".into(),
            proxy: ProxySettings::default(),
            seed: 0,
        };
        let nowhere = LatencyService::new("/no/such/program".into(), vec![]);
        assert_eq!(setup.build(None, &nowhere).unwrap().1, "none");
        let mut bad = serde_json::to_value(&setup).unwrap();
        bad["evaluator"] = "magic".into();
        let err = serde_json::from_value::<EvalSetup>(bad).err().unwrap().to_string();
        assert!(err.contains("unknown evaluator `magic`"), "{err}");
    }
}
