//! The real evaluator: proxy training on held-out validation data (evaluator crate) plus the
//! latency of the full network at the target setting.
//!
//! The target is one thread (as the paper timed one phone core) while training uses all of
//! this process's threads, so latency comes through an [`evaluator::latency::LatencyService`]:
//! predicted here from the target's lookup table when it holds every part, otherwise from a
//! child process at the target's thread count (measuring and adding what the table lacks).

use evaluator::latency::{LatencyMethod, LatencyService, LatencySetting};
use evaluator::train::prepared::PreparedData;
use evaluator::train::proxy::{proxy_evaluate, ProxyConfig};
use serde::{Deserialize, Serialize};
use space::{Arch, SearchSpace};

use crate::evaluate::{Evaluation, ScoreScale, TrialEvaluator, TrialSpec};

pub struct ProxyEvaluator {
    pub data: PreparedData,
    pub proxy: ProxyConfig,
    pub latency: LatencySetting,
    pub service: LatencyService,
}

impl ProxyEvaluator {
    /// Loads the data once and prepares the evaluator; errors are one line naming the input.
    pub fn new(data: &str, s: &ProxySettings, seed: u64, service: LatencyService) -> Result<Self, String> {
        if let Some(w) = s.width.filter(|w| !(*w > 0.0 && *w <= 4.0)) {
            return Err(format!("proxy.width: {w} is not allowed; use a channel multiplier in (0, 4] or null"));
        }
        let data = s.load_data(data, seed)?;
        let proxy = ProxyConfig {
            epochs: s.epochs,
            batch: s.batch,
            max_lr: s.max_lr,
            resolution: s.resolution,
            width: s.width,
        };
        Ok(Self { data, proxy, latency: s.latency.clone(), service })
    }

    /// The latency of `arch` at the target setting and whether it was `predicted` or `measured`.
    pub fn latency(&self, arch: &Arch) -> Result<(f64, String), String> {
        let l = self.service.latency(arch, &self.latency)?;
        Ok((l.ms, l.source.as_str().to_string()))
    }

    /// One line on the data and the training, for the log.
    pub fn describe(&self, data: &str) -> String {
        format!(
            "proxy data: {data} ({} train / {} validation images, {} classes), {} epochs per trial{}",
            self.data.train.len(),
            self.data.val.len(),
            self.data.train.num_classes(),
            self.proxy.epochs,
            self.proxy.width.map_or(String::new(), |w| format!(", at {w}x width"))
        )
    }
}

/// The lowest latency the space allows, predicted from this machine's lookup table: the
/// space's cheapest settings in every row (first kernel set, expansion, SE and activation
/// options, fewest layers), with ungrouped and with grouped 1x1 convolutions.
pub fn fastest_in_space(
    space: &SearchSpace,
    setting: &LatencySetting,
    service: &LatencyService,
) -> Result<f64, String> {
    let cheapest = vec![0; space.decisions.len()];
    let grouped: Vec<usize> = space
        .decisions
        .iter()
        .map(|d| match d.name.ends_with("groups") {
            true => d.options.len() - 1,
            false => 0,
        })
        .collect();
    let predict = LatencySetting { method: LatencyMethod::Predict, ..setting.clone() };
    let mut fastest = f64::INFINITY;
    for point in [cheapest, grouped] {
        let arch = space.decode(&point).map_err(|e| e.to_string())?;
        fastest = fastest.min(service.latency(&arch, &predict)?.ms);
    }
    Ok(fastest)
}

impl TrialEvaluator for ProxyEvaluator {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let (latency_ms, latency_source) = self.latency(&trial.arch)?;
        let proxy = ProxyConfig { epochs: trial.epochs.unwrap_or(self.proxy.epochs), ..self.proxy.clone() };
        let r = proxy_evaluate(&trial.arch, &proxy, &self.data, trial.seed).map_err(|e| e.to_string())?;
        let cost = space::cost(&trial.arch, self.latency.resolution).total;
        let mut details = serde_json::Map::new();
        if trial.epochs.is_some() {
            details.insert("epochs".into(), proxy.epochs.into());
        }
        details.insert("train_loss".into(), r.train_loss.into());
        details.insert("mean_train_loss".into(), r.mean_train_loss.into());
        details.insert("images_per_s".into(), r.images_per_s.into());
        Ok(Evaluation {
            score: r.val_accuracy,
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
    /// Channel multiplier of the copy the proxy trains (`null`: the candidate as it is); the
    /// latency and costs are the candidate's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    /// Training images per class taken from the data (before the validation hold-out).
    pub train_per_class: Option<usize>,
    /// Validation images per class held out of them.
    pub val_per_class: Option<usize>,
    pub latency: LatencySetting,
    /// The zero-cost evaluators' scale over a reference sample of the space, filled in when a
    /// run starts (`setup::calibrate`) and kept by the run config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_scale: Option<ScoreScale>,
}

impl ProxySettings {
    /// The proxy's data, cut as these settings say (`seed` cuts the validation hold-out).
    pub fn load_data(&self, data: &str, seed: u64) -> Result<PreparedData, String> {
        let spec = evaluator::train::prepared::DataSpec {
            source: data.to_string(),
            train_per_class: self.train_per_class,
            val_per_class: self.val_per_class,
            augment: None,
            seed,
        };
        PreparedData::load(&spec).map_err(|e| e.to_string())
    }

    /// A space with its own resolution (NAS-Bench-Macro's 32 px) is judged there: latency is
    /// measured and predicted at it, and the proxy trains at it unless the config sets a side.
    pub fn follow_space(&mut self, space: &SearchSpace) {
        if let Some(r) = space.resolution {
            self.latency.resolution = r;
            self.resolution = self.resolution.or(Some(r));
        }
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        let p = ProxyConfig::default();
        Self {
            epochs: p.epochs,
            batch: p.batch,
            max_lr: p.max_lr,
            resolution: p.resolution,
            width: p.width,
            train_per_class: None,
            val_per_class: None,
            latency: LatencySetting::default(),
            zero_scale: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_space_with_a_resolution_sets_latency_and_an_unset_proxy_side() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json");
        let space = SearchSpace::load(path).unwrap();
        let mut unset = ProxySettings { resolution: None, ..ProxySettings::default() };
        unset.follow_space(&space);
        assert_eq!((unset.latency.resolution, unset.resolution), (32, Some(32)));
        let mut set = ProxySettings { resolution: Some(16), ..ProxySettings::default() };
        set.follow_space(&space);
        assert_eq!((set.latency.resolution, set.resolution), (32, Some(16)));
        let mut default_space = ProxySettings::default();
        let before = default_space.latency.resolution;
        default_space.follow_space(&SearchSpace::default_space());
        assert_eq!(default_space.latency.resolution, before);
    }
}
