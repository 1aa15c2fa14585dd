//! Which evaluator a run scores with (`RunConfig.evaluator`, `--evaluator`), and the one place
//! that builds it, for the local pool and for distributed workers alike.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use evaluator::latency::LatencyService;
use serde::{Deserialize, Serialize};

use crate::evaluate::{SurrogateEvaluator, TableEvaluator, TableLatency, TrialEvaluator, ZeroCostEvaluator};
use crate::fidelity::truth::DEFAULT_FIELD;
use crate::proxy::{ProxyEvaluator, ProxySettings};

/// The evaluator of a run, serialised as its spec (`proxy`, `surrogate`, `table:FILE:FIELD`;
/// read through [`FromStr`], so an unknown name gets the hint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum EvaluatorKind {
    /// Proxy training on real data plus the latency at the target setting.
    #[default]
    Proxy,
    /// A closed-form stand-in, for testing; with `proxy.latency.table` set its latencies are
    /// that table's.
    Surrogate,
    /// Accuracy looked up in a ground-truth file (NAS-Bench-Macro's format), latency as usual.
    Table { file: String, field: String },
    /// SynFlow of the untrained network (`zero:synflow`), latency as usual.
    ZeroSynflow,
}

const HINT: &str = "hint: proxy, surrogate, table:FILE[:FIELD] or zero:synflow";

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
    /// Whether its score comes from training, so that a trial's epochs (a successive-halving
    /// rung's budget) change it; the others score every rung alike.
    pub fn trains(&self) -> bool {
        matches!(self, EvaluatorKind::Proxy)
    }

    pub fn name(&self) -> &'static str {
        match self {
            EvaluatorKind::Proxy => "proxy",
            EvaluatorKind::Surrogate => "surrogate",
            EvaluatorKind::Table { .. } => "table",
            EvaluatorKind::ZeroSynflow => "zero:synflow",
        }
    }

    /// Builds the evaluator on `data` (loaded once here) with `proxy`'s settings; `seed` cuts
    /// the validation hold-out. Errors are one line naming the input.
    pub fn build(
        &self,
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
            EvaluatorKind::Table { file, field } => {
                let table = TableEvaluator::new(file, field, proxy.latency.clone(), latency.clone())?;
                Ok(BuiltEvaluator {
                    evaluator: Arc::new(table),
                    data_fingerprint: "none".into(),
                    description: Some(format!("accuracy: field {field:?} of {file}")),
                })
            }
            EvaluatorKind::ZeroSynflow => {
                let resolution = proxy.resolution.unwrap_or(proxy.latency.resolution);
                let zero = ZeroCostEvaluator {
                    resolution,
                    classes: 10,
                    latency: proxy.latency.clone(),
                    service: latency.clone(),
                };
                Ok(BuiltEvaluator {
                    evaluator: Arc::new(zero),
                    data_fingerprint: "none".into(),
                    description: Some(format!("zero-cost score: SynFlow at {resolution}x{resolution}, untrained")),
                })
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
        match self {
            EvaluatorKind::Table { file, field } => write!(f, "table:{file}:{field}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for EvaluatorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "proxy" => Ok(EvaluatorKind::Proxy),
            "surrogate" => Ok(EvaluatorKind::Surrogate),
            "zero:synflow" => Ok(EvaluatorKind::ZeroSynflow),
            table if table.starts_with("table:") => {
                let spec = &table["table:".len()..];
                // FILE may hold colons itself; a FIELD is a plain name after the last one.
                let (file, field) = match spec.rsplit_once(':') {
                    Some((file, field)) if !field.contains(['/', '.']) && !file.is_empty() => (file, field),
                    _ => (spec, DEFAULT_FIELD),
                };
                match file.is_empty() || field.is_empty() {
                    true => Err(format!("evaluator `{table}`: give the truth file, as table:FILE[:FIELD]")),
                    false => Ok(EvaluatorKind::Table { file: file.to_string(), field: field.to_string() }),
                }
            }
            other => Err(format!("unknown evaluator `{other}` ({HINT})")),
        }
    }
}

impl From<EvaluatorKind> for String {
    fn from(kind: EvaluatorKind) -> String {
        kind.to_string()
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
        let table = EvaluatorKind::Table { file: "/d/t.json".into(), field: "std".into() };
        for kind in [EvaluatorKind::Proxy, EvaluatorKind::Surrogate, table, EvaluatorKind::ZeroSynflow] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(kind.to_string().parse::<EvaluatorKind>(), Ok(kind.clone()));
            assert_eq!(serde_json::from_str::<EvaluatorKind>(&format!("\"{kind}\"")).unwrap(), kind);
        }
        let err = "magic".parse::<EvaluatorKind>().unwrap_err();
        assert_eq!(err, "unknown evaluator `magic` (hint: proxy, surrogate, table:FILE[:FIELD] or zero:synflow)");
        let err = serde_json::from_str::<EvaluatorKind>("\"magic\"").unwrap_err().to_string();
        assert!(err.contains("unknown evaluator `magic` (hint: proxy, surrogate"), "{err}");
    }

    #[test]
    fn a_table_spec_takes_a_default_field_and_paths_with_dots() {
        let parse = |s: &str| s.parse::<EvaluatorKind>();
        let table = |file: &str, field: &str| Ok(EvaluatorKind::Table { file: file.into(), field: field.into() });
        assert_eq!(parse("table:../shared/x/cifar10-dev.json"), table("../shared/x/cifar10-dev.json", "mean_acc"));
        assert_eq!(parse("table:dev.json:std"), table("dev.json", "std"));
        assert_eq!(parse("table:C:/data/dev.json"), table("C:/data/dev.json", "mean_acc"));
        assert!(parse("table:").unwrap_err().contains("give the truth file"));
    }
}
