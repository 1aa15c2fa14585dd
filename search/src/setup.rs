//! Which evaluator a run scores with (`RunConfig.evaluator`, `--evaluator`), and the one place
//! that builds it, for the local pool and for distributed workers alike.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use evaluator::latency::LatencyService;
use serde::{Deserialize, Serialize};

use crate::evaluate::{SurrogateEvaluator, TableLatency, TrialEvaluator};
use crate::proxy::{ProxyEvaluator, ProxySettings};

/// The evaluator of a run, serialised as its name (read through [`FromStr`], so an unknown
/// name gets the hint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum EvaluatorKind {
    /// Proxy training on real data plus the latency at the target setting.
    #[default]
    Proxy,
    /// A closed-form stand-in, for testing; with `proxy.latency.table` set its latencies are
    /// that table's.
    Surrogate,
}

/// A built evaluator and what it was built on.
#[derive(Clone)]
pub struct BuiltEvaluator {
    pub evaluator: Arc<dyn TrialEvaluator>,
    /// Fingerprint of the proxy data (`none` for the surrogate): workers must load the same.
    pub data_fingerprint: String,
    /// One line on the data and training, for the log (`None` for the surrogate).
    pub description: Option<String>,
}

impl EvaluatorKind {
    pub fn name(self) -> &'static str {
        match self {
            EvaluatorKind::Proxy => "proxy",
            EvaluatorKind::Surrogate => "surrogate",
        }
    }

    /// Builds the evaluator on `data` (loaded once here) with `proxy`'s settings; `seed` cuts
    /// the validation hold-out. Errors are one line naming the input.
    pub fn build(
        self,
        data: &str,
        proxy: &ProxySettings,
        seed: u64,
        latency: &LatencyService,
    ) -> Result<BuiltEvaluator, String> {
        match self {
            EvaluatorKind::Surrogate => {
                // A latency table replaces the surrogate's formula (`--latency-table`).
                let evaluator: Arc<dyn TrialEvaluator> = match proxy.latency.table {
                    Some(_) => {
                        Arc::new(TableLatency::new(Box::new(SurrogateEvaluator), &proxy.latency, latency.clone()))
                    }
                    None => Arc::new(SurrogateEvaluator),
                };
                Ok(BuiltEvaluator { evaluator, data_fingerprint: "none".into(), description: None })
            }
            EvaluatorKind::Proxy => {
                let proxy = ProxyEvaluator::new(data, proxy, seed, latency.clone())?;
                Ok(BuiltEvaluator {
                    data_fingerprint: proxy.data.record.fingerprint.clone(),
                    description: Some(proxy.describe(data)),
                    evaluator: Arc::new(proxy),
                })
            }
        }
    }
}

impl fmt::Display for EvaluatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EvaluatorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "proxy" => Ok(EvaluatorKind::Proxy),
            "surrogate" => Ok(EvaluatorKind::Surrogate),
            other => Err(format!("unknown evaluator `{other}` (hint: proxy or surrogate)")),
        }
    }
}

impl TryFrom<String> for EvaluatorKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_one_is_one_line_with_the_hint() {
        for kind in [EvaluatorKind::Proxy, EvaluatorKind::Surrogate] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(kind.name().parse::<EvaluatorKind>(), Ok(kind));
        }
        let err = "magic".parse::<EvaluatorKind>().unwrap_err();
        assert_eq!(err, "unknown evaluator `magic` (hint: proxy or surrogate)");
        let err = serde_json::from_str::<EvaluatorKind>("\"magic\"").unwrap_err().to_string();
        assert!(err.contains("unknown evaluator `magic` (hint: proxy or surrogate)"), "{err}");
    }
}
