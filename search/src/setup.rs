//! Which evaluator a run scores with (`RunConfig.evaluator`, `--evaluator`), and the one place
//! that builds it, for the local pool and for distributed workers alike.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use evaluator::latency::LatencyService;
use serde::{Deserialize, Serialize};

use crate::evaluate::{
    SupernetEvaluator, SurrogateEvaluator, TableEvaluator, TableLatency, TrialEvaluator, ZeroCost, ZeroCostEvaluator,
};
use crate::fidelity::truth::DEFAULT_FIELD;
use crate::proxy::{ProxyEvaluator, ProxySettings};

/// The evaluator of a run, serialised as its spec (`proxy`, `surrogate`, `table:FILE:FIELD`,
/// `zero:SCORE`; read through [`FromStr`], so an unknown name gets the hint).
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
    /// A zero-cost score of the untrained network (`zero:synflow`, `zero:naswot`), latency as
    /// usual.
    Zero(ZeroScore),
    /// Accuracy with the weights inherited from a supernet (`nas supernet train --out DIR`),
    /// latency as usual.
    Supernet { dir: String },
}

/// What an evaluator's number (`Evaluation::score`) is, decided by the evaluator alone: tables,
/// files and reports name the number by it (`metric` in `summary.json` and `best.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// An accuracy in [0, 1]: validation accuracy after proxy training or with a supernet's
    /// weights, or a truth file's accuracy field.
    Accuracy,
    /// A number in [0, 1] that only ranks networks: a zero-cost score through a logistic of its
    /// standardised value, or a truth field that is not an accuracy.
    Score,
    /// The surrogate's closed form of MACs and params (for testing), shaped like an accuracy.
    Surrogate,
}

impl ValueKind {
    /// The number's name in tables and JSON (`metric`): `accuracy`, `score` or `surrogate`.
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Accuracy => "accuracy",
            ValueKind::Score => "score",
            ValueKind::Surrogate => "surrogate",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The zero-cost scores (`evaluator::zero_cost`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZeroScore {
    /// SynFlow (Tanaka et al., 2020) on an all-ones input.
    Synflow,
    /// NASWOT (Mellor et al., 2021) on a batch of the proxy's training images.
    Naswot,
}

/// Images in NASWOT's batch, as the paper's CIFAR-10 runs take.
pub const NASWOT_BATCH: usize = 128;

const HINT: &str = "hint: proxy, surrogate, table:FILE[:FIELD], zero:synflow, zero:naswot or supernet:DIR";

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

    /// What its number is: a truth field is an accuracy when its name says so (`mean_acc`,
    /// `test_acc`), a score otherwise (`std`).
    pub fn value_kind(&self) -> ValueKind {
        match self {
            EvaluatorKind::Proxy | EvaluatorKind::Supernet { .. } => ValueKind::Accuracy,
            EvaluatorKind::Table { field, .. } if field.contains("acc") => ValueKind::Accuracy,
            EvaluatorKind::Table { .. } | EvaluatorKind::Zero(_) => ValueKind::Score,
            EvaluatorKind::Surrogate => ValueKind::Surrogate,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EvaluatorKind::Proxy => "proxy",
            EvaluatorKind::Surrogate => "surrogate",
            EvaluatorKind::Table { .. } => "table",
            EvaluatorKind::Zero(ZeroScore::Synflow) => "zero:synflow",
            EvaluatorKind::Zero(ZeroScore::Naswot) => "zero:naswot",
            EvaluatorKind::Supernet { .. } => "supernet",
        }
    }

    /// Builds the evaluator on `data` (loaded once here) with `proxy`'s settings; `seed` cuts
    /// the validation hold-out and draws NASWOT's batch. Errors are one line naming the input.
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
                    description: Some(format!("{}: field {field:?} of {file}", self.value_kind())),
                })
            }
            EvaluatorKind::Zero(score) => {
                let (mut zero, fingerprint, description) = zero_cost(*score, data, proxy, seed, latency)?;
                let Some(scale) = &proxy.zero_scale else {
                    return Err(format!("{self}: no reference scale (proxy.zero_scale) in the run config"));
                };
                zero.scale = Some(scale.clone());
                let description = format!(
                    "{description}; score = logistic((v - {:.4}) / {:.4}), the mean and sd of v over {} networks of the space",
                    scale.mean, scale.sd, scale.networks
                );
                Ok(BuiltEvaluator {
                    evaluator: Arc::new(zero),
                    data_fingerprint: fingerprint,
                    description: Some(description),
                })
            }
            EvaluatorKind::Supernet { dir } => {
                let e = SupernetEvaluator::open(dir, data, proxy.latency.clone(), latency.clone())?;
                Ok(BuiltEvaluator {
                    data_fingerprint: e.scorer.record.data.fingerprint.clone(),
                    description: Some(e.describe(dir)),
                    evaluator: Arc::new(e),
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

/// Fills in `proxy.zero_scale` for a zero-cost evaluator that has none, from its scores of
/// `reference` (`evaluate::reference_sample` of the searched space); other evaluators and a
/// recorded scale are left as they are.
pub fn calibrate(
    kind: &EvaluatorKind,
    data: &str,
    proxy: &mut ProxySettings,
    seed: u64,
    latency: &LatencyService,
    reference: &[(space::Arch, u64)],
) -> Result<(), String> {
    let EvaluatorKind::Zero(score) = kind else { return Ok(()) };
    if proxy.zero_scale.is_none() {
        let (zero, _, _) = zero_cost(*score, data, proxy, seed, latency)?;
        proxy.zero_scale = Some(zero.calibrate(reference)?);
    }
    Ok(())
}

/// An uncalibrated zero-cost evaluator, its data's fingerprint and a line describing it.
/// NASWOT scores the first batch of [`NASWOT_BATCH`] images the proxy's training would draw
/// with `seed` (shuffled and augmented as training is, at the proxy's side); fewer when the
/// training split is smaller.
fn zero_cost(
    score: ZeroScore,
    data: &str,
    proxy: &ProxySettings,
    seed: u64,
    latency: &LatencyService,
) -> Result<(ZeroCostEvaluator, String, String), String> {
    let resolution = proxy.resolution.unwrap_or(proxy.latency.resolution);
    let evaluator = |cost, classes| ZeroCostEvaluator {
        cost,
        classes,
        latency: proxy.latency.clone(),
        service: latency.clone(),
        scale: None,
    };
    if score == ZeroScore::Synflow {
        let description = format!("zero-cost score: SynFlow at {resolution}x{resolution}, untrained");
        return Ok((evaluator(ZeroCost::Synflow { resolution }, 10), "none".into(), description));
    }
    let prepared = proxy.load_data(data, seed)?;
    let loader = prepared.train_loader(NASWOT_BATCH, seed, Some(resolution));
    let Some((images, _)) = loader.epoch(0).next() else { return Err(format!("{data}: no training images")) };
    let batch = images.dim(0).map_err(|e| e.to_string())?;
    let description =
        format!("zero-cost score: NASWOT on {batch} training images of {data} at {resolution}x{resolution}, untrained");
    let zero = evaluator(ZeroCost::Naswot { images }, prepared.train.num_classes());
    Ok((zero, prepared.record.fingerprint.clone(), description))
}

impl fmt::Display for EvaluatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvaluatorKind::Table { file, field } => write!(f, "table:{file}:{field}"),
            EvaluatorKind::Supernet { dir } => write!(f, "supernet:{dir}"),
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
            "zero:synflow" => Ok(EvaluatorKind::Zero(ZeroScore::Synflow)),
            "zero:naswot" => Ok(EvaluatorKind::Zero(ZeroScore::Naswot)),
            supernet if supernet.starts_with("supernet:") => match &supernet["supernet:".len()..] {
                "" => Err("evaluator `supernet:`: give the folder `nas supernet train` wrote, as supernet:DIR".into()),
                dir => Ok(EvaluatorKind::Supernet { dir: dir.to_string() }),
            },
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
        let zero = |score| EvaluatorKind::Zero(score);
        let supernet = EvaluatorKind::Supernet { dir: "runs/sn".into() };
        for kind in [
            EvaluatorKind::Proxy,
            EvaluatorKind::Surrogate,
            table,
            zero(ZeroScore::Synflow),
            zero(ZeroScore::Naswot),
            supernet,
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(kind.to_string().parse::<EvaluatorKind>(), Ok(kind.clone()));
            assert_eq!(serde_json::from_str::<EvaluatorKind>(&format!("\"{kind}\"")).unwrap(), kind);
        }
        let err = "magic".parse::<EvaluatorKind>().unwrap_err();
        assert_eq!(
            err,
            "unknown evaluator `magic` (hint: proxy, surrogate, table:FILE[:FIELD], zero:synflow, zero:naswot or supernet:DIR)"
        );
        assert_eq!("zero:naswot".parse::<EvaluatorKind>(), Ok(zero(ZeroScore::Naswot)));
        assert!("zero:grasp".parse::<EvaluatorKind>().unwrap_err().contains("zero:naswot"));
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

    #[test]
    fn naswot_scores_the_first_seeded_batch_of_the_proxy_data_on_a_calibrated_scale() {
        let service = LatencyService::new("/no/such/program".into(), vec![]);
        let mut proxy = ProxySettings {
            resolution: Some(32),
            train_per_class: Some(20),
            val_per_class: Some(2),
            ..ProxySettings::default()
        };
        let kind = EvaluatorKind::Zero(ZeroScore::Naswot);
        let err = kind.build("default", &proxy, 3, &service).err().unwrap();
        assert!(err.contains("no reference scale (proxy.zero_scale)"), "{err}");
        let space =
            space::SearchSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json"))
                .unwrap()
                .with_classes(10);
        let reference = crate::evaluate::reference_sample(&space, 3).unwrap();
        calibrate(&kind, "default", &mut proxy, 3, &service, &reference).unwrap();
        let scale = proxy.zero_scale.clone().unwrap();
        assert_eq!(scale.networks, crate::evaluate::REFERENCE_NETWORKS);
        assert!(scale.mean > 100.0 && scale.sd > 0.0, "{scale:?}");
        let built = kind.build("default", &proxy, 3, &service).unwrap();
        assert_eq!(built.evaluator.name(), "zero:naswot");
        assert_eq!(built.data_fingerprint, proxy.load_data("default", 3).unwrap().record.fingerprint);
        let line = built.description.unwrap();
        assert!(line.starts_with("zero-cost score: NASWOT on 128 training images of default at 32x32"), "{line}");
        assert!(line.contains("; score = logistic((v - "), "{line}");
        assert!(line.ends_with("the mean and sd of v over 16 networks of the space"), "{line}");
        // The same seed draws the same reference; another seed another.
        let names = |seed| -> Vec<String> {
            let sample = crate::evaluate::reference_sample(&space, seed).unwrap();
            sample.iter().map(|(a, s)| format!("{:?}{s}", a.blocks)).collect()
        };
        assert_eq!(names(3), names(3));
        assert_ne!(names(3), names(4));
        let err = kind.build("/no/such/data", &proxy, 3, &service).err().unwrap();
        assert!(err.contains("/no/such/data"), "{err}");
    }

    #[test]
    fn each_evaluator_says_what_its_number_is() {
        let kind = |spec: &str| spec.parse::<EvaluatorKind>().unwrap().value_kind();
        for (spec, want) in [
            ("proxy", ValueKind::Accuracy),
            ("supernet:runs/sn", ValueKind::Accuracy),
            ("table:truth.json", ValueKind::Accuracy),
            ("table:truth.json:test_acc", ValueKind::Accuracy),
            ("table:truth.json:std", ValueKind::Score),
            ("zero:naswot", ValueKind::Score),
            ("zero:synflow", ValueKind::Score),
            ("surrogate", ValueKind::Surrogate),
        ] {
            assert_eq!(kind(spec), want, "{spec}");
        }
        assert_eq!(serde_json::to_value(ValueKind::Score).unwrap(), "score");
    }

    #[test]
    fn a_scale_needs_two_different_finite_scores() {
        let scale = crate::evaluate::ScoreScale::of(&[1.0, 3.0, f64::NEG_INFINITY]).unwrap();
        assert_eq!((scale.mean, scale.networks), (2.0, 2));
        assert!((scale.sd - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(scale.score(2.0), 0.5);
        assert!((scale.score(2.0 + 2.0 * scale.sd) - 0.8808).abs() < 1e-4);
        assert_eq!(scale.score(f64::NEG_INFINITY), 0.0);
        for values in [&[5.0, 5.0][..], &[1.0, f64::NAN], &[]] {
            assert!(crate::evaluate::ScoreScale::of(values).unwrap_err().contains("no scale"), "{values:?}");
        }
    }
}
