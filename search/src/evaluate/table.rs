//! `--evaluator table:FILE[:FIELD]`: a trial's accuracy looked up in a ground-truth file in
//! NAS-Bench-Macro's format (what 50 epochs of stand-alone training measured), its latency
//! from the latency service as for the proxy. It lets strategies be compared on real
//! accuracies in seconds, and is the reference `nas fidelity` scores other evaluators against.

use evaluator::latency::{LatencyService, LatencySetting};

use super::{Evaluation, TrialEvaluator, TrialSpec};
use crate::fidelity::{Truth, NAS_BENCH_MACRO};

/// Looks trials up in a truth file; see the module doc.
pub struct TableEvaluator {
    truth: Truth,
    latency: LatencySetting,
    service: LatencyService,
}

impl TableEvaluator {
    /// Loads `file`, taking `field` (a percentage, as NAS-Bench-Macro's accuracies are) from
    /// every entry. Errors are one line naming the file.
    pub fn new(file: &str, field: &str, latency: LatencySetting, service: LatencyService) -> Result<Self, String> {
        let truth = Truth::load(file, field, NAS_BENCH_MACRO)?;
        if let Some((code, e)) = truth.iter().find(|(_, e)| !(0.0..=100.0).contains(&e.value)) {
            return Err(format!(
                "{file}: entry {code:?} field {field:?} is {}; the table evaluator reads percentages (0 to 100)",
                e.value
            ));
        }
        Ok(Self { truth, latency, service })
    }

    /// The truth's accuracy of `arch` in [0, 1], or one line saying why there is none.
    pub fn accuracy(&self, arch: &space::Arch) -> Result<f64, String> {
        let name = arch.name.as_deref().unwrap_or("(unnamed)");
        let code = space::family::nas_bench_macro_code(arch).ok_or_else(|| {
            format!("{}: architecture {name} is not a NAS-Bench-Macro network, so it has no entry", self.truth.source())
        })?;
        Ok(self.truth.get(&code)? / 100.0)
    }
}

impl TrialEvaluator for TableEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let score = self.accuracy(&trial.arch)?;
        let latency = self.service.latency(&trial.arch, &self.latency)?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        Ok(Evaluation {
            score,
            latency_ms: latency.ms,
            latency_source: latency.source.as_str().to_string(),
            macs: cost.macs,
            params: cost.params,
            train_seconds: 0.0,
            details: serde_json::Map::new(),
        })
    }

    fn name(&self) -> &str {
        "table"
    }
}
