//! An evaluator's accuracy with a lookup table's latency: what `--latency-table` does to the
//! surrogate, whose own latency is a formula. With another device's table (`nas latency
//! --build-table` run there) every trial carries that device's predicted latency, so a search
//! here aims at the device's target.

use evaluator::latency::{LatencyMethod, LatencyService, LatencySetting};

use super::{Evaluation, TrialEvaluator, TrialSpec};

pub struct TableLatency {
    inner: Box<dyn TrialEvaluator>,
    /// The target setting; always predicted (a table never measures for another device).
    setting: LatencySetting,
    service: LatencyService,
}

impl TableLatency {
    pub fn new(inner: Box<dyn TrialEvaluator>, setting: &LatencySetting, service: LatencyService) -> Self {
        let setting = LatencySetting { method: LatencyMethod::Predict, ..setting.clone() };
        Self { inner, setting, service }
    }
}

impl TrialEvaluator for TableLatency {
    fn evaluate(&self, trial: &TrialSpec) -> Result<Evaluation, String> {
        let e = self.inner.evaluate(trial)?;
        let l = self.service.latency(&trial.arch, &self.setting)?;
        Ok(Evaluation { latency_ms: l.ms, latency_source: l.source.as_str().into(), ..e })
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::SurrogateEvaluator;
    use evaluator::latency::{parts, DeviceTable, Fit, Machine, MeasureConfig, Table};
    use std::path::PathBuf;
    use testkit::arch::two_block_net;

    /// The surrogate with a calibrated aarch64 table of every part of the test network: the
    /// trial keeps the surrogate's accuracy and takes the table's latency, computed in process
    /// (the service's program does not exist).
    #[test]
    fn trials_take_the_tables_latency_and_keep_the_accuracy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arm.json");
        let cfg = MeasureConfig { resolution: 32, ..Default::default() };
        let mut machine = Machine::with_threads(&cfg, 1);
        (machine.cpu, machine.arch) = ("ARM Neoverse-N1".into(), "aarch64".into());
        let mut table = Table::new(machine);
        for (i, part) in parts(&two_block_net(), 32).iter().enumerate() {
            table.entries.insert(part.key(), 0.5 + i as f64);
        }
        table.fit = Some(Fit { scale: 1.5, constant_ms: 2.0, networks: 3 });
        table.save(&path).unwrap();
        let setting = LatencySetting { threads: 1, resolution: 32, table: Some(path.clone()), ..Default::default() };
        let service = LatencyService::new(PathBuf::from("/no/such/program"), vec![]);
        let evaluator = TableLatency::new(Box::new(SurrogateEvaluator), &setting, service);
        let trial = TrialSpec { id: 0, arch: two_block_net(), choices: vec![], seed: 7, threads: 1, epochs: None };
        let e = evaluator.evaluate(&trial).unwrap();
        let expected = DeviceTable::open(&path, &cfg, 1).unwrap().unwrap().latency(&two_block_net()).unwrap();
        assert_eq!((e.latency_ms, e.latency_source.as_str()), (expected.ms, "predicted"));
        assert_eq!(e.score, SurrogateEvaluator.evaluate(&trial).unwrap().score);
    }
}
