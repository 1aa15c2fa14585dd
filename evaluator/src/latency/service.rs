//! Latency at a thread count other than this process's: a search trains on all threads while
//! its target is one thread, and a process's pool is sized once ([`super::threads`]).
//!
//! Predicting from a table file that already holds every part is arithmetic, so it is done in
//! this process, reading the target's file afresh each time (a child may have added parts).
//! Anything that times a network (a missing part, calibration, or `method: measure`) runs in a
//! child process started at the target's thread count, the only place such timings are valid:
//! it reads a [`LatencyRequest`] as JSON on stdin and answers with a [`Latency`] as JSON on
//! stdout. The program to start is given by the caller (the `nas` binary passes itself).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use space::Arch;

use super::device::DeviceTable;
use super::parts::parts;
use super::predict::Prediction;
use super::table::{Machine, Table};
use super::{Latency, LatencyError, LatencySource, MeasureConfig};

/// Whether latency is predicted from the lookup table or measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyMethod {
    /// From the lookup table (parts it lacks are measured and added).
    Predict,
    /// Timed whole-network forwards (the median).
    Measure,
}

/// How the latency of a candidate is obtained: the target's setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySetting {
    pub method: LatencyMethod,
    pub threads: usize,
    pub resolution: usize,
    /// A table file other than the per-machine cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<PathBuf>,
}

impl Default for LatencySetting {
    fn default() -> Self {
        Self { method: LatencyMethod::Predict, threads: 1, resolution: 224, table: None }
    }
}

impl LatencySetting {
    /// Whole-network measurement at this setting (224x224 batch 1 unless the resolution differs).
    pub fn measure_config(&self) -> MeasureConfig {
        MeasureConfig { resolution: self.resolution, ..Default::default() }
    }

    /// The table file when it is another device's (see [`DeviceTable::open`]): `None` without
    /// a file (yet) or for this machine's own.
    pub fn device_table(&self) -> Result<Option<DeviceTable>, LatencyError> {
        match self.table.as_deref().filter(|p| p.exists()) {
            Some(path) => DeviceTable::open(path, &self.measure_config(), self.threads),
            None => Ok(None),
        }
    }
}

/// What a latency child process is asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRequest {
    pub arch: Arch,
    pub setting: LatencySetting,
}

/// Latency at a target setting: in this process from a complete table file, else from a child.
#[derive(Clone, Debug)]
pub struct LatencyService {
    program: PathBuf,
    args: Vec<String>,
}

impl LatencyService {
    /// Children are `program args...`, answering one [`LatencyRequest`] each (module doc).
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self { program, args }
    }

    /// The latency of `arch` at `setting`: from another device's table when it names one.
    pub fn latency(&self, arch: &Arch, setting: &LatencySetting) -> Result<Latency, String> {
        if let Some(device) = setting.device_table().map_err(|e| e.to_string())? {
            return device.latency(arch).map_err(|e| e.to_string());
        }
        let in_process = match setting.method {
            LatencyMethod::Predict => predict_from_file(arch, setting),
            LatencyMethod::Measure => None,
        };
        match in_process {
            Some(latency) => Ok(latency),
            None => self.ask_child(&LatencyRequest { arch: arch.clone(), setting: setting.clone() }),
        }
    }

    /// Starts a child for `request` and reads its answer; its error line comes back as ours.
    pub fn ask_child(&self, request: &LatencyRequest) -> Result<Latency, String> {
        let what = request.arch.name.as_deref().unwrap_or("an architecture");
        let running = |e: std::io::Error| format!("running {}: {e}", self.program.display());
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(running)?;
        let json = serde_json::to_vec(request).expect("a request always serialises");
        let written = child.stdin.take().expect("stdin is piped").write_all(&json);
        let out = child.wait_with_output().map_err(running)?;
        if !out.status.success() {
            return Err(format!("latency of {what}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        written.map_err(running)?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("latency of {what}: answer {:?}: {e}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// The prediction for `arch` from the table file `setting` names (default: the target's file
/// in the per-machine cache), without measuring anything: `None` unless that file is keyed to
/// the target, calibrated, and holds every part of `arch`.
pub fn predict_from_file(arch: &Arch, setting: &LatencySetting) -> Option<Latency> {
    let machine = Machine::with_threads(&setting.measure_config(), setting.threads);
    let path = setting.table.clone().unwrap_or_else(|| machine.default_path());
    let table = Table::load(&path, &machine).ok()?;
    table.fit?;
    let p = Prediction::from_table(&table, &parts(arch, setting.resolution))?;
    Some(Latency {
        ms: p.ms,
        source: LatencySource::Predicted,
        resolution: setting.resolution,
        threads: setting.threads,
        measurement: None,
        prediction: Some(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Fit;
    use testkit::arch::two_block_net;

    fn setting(table: PathBuf) -> LatencySetting {
        LatencySetting { method: LatencyMethod::Predict, threads: 3, resolution: 32, table: Some(table) }
    }

    /// A calibrated table for 3 threads holding every part of the test network.
    fn full_table(s: &LatencySetting) -> Table {
        let mut table = Table::new(Machine::with_threads(&s.measure_config(), s.threads));
        for (i, part) in parts(&two_block_net(), 32).iter().enumerate() {
            table.entries.insert(part.key(), 0.25 * (i + 1) as f64);
        }
        table.fit = Some(Fit { scale: 1.5, constant_ms: 0.5, networks: 2 });
        table
    }

    #[test]
    fn a_full_table_file_predicts_in_process_at_the_targets_threads() {
        let dir = tempfile::tempdir().unwrap();
        let s = setting(dir.path().join("t.json"));
        let table = full_table(&s);
        table.save(s.table.as_deref().unwrap()).unwrap();
        let l = predict_from_file(&two_block_net(), &s).expect("a full table predicts");
        let sum: f64 = table.entries.values().sum();
        assert_eq!((l.source, l.threads, l.resolution), (LatencySource::Predicted, 3, 32));
        assert!((l.ms - (1.5 * sum + 0.5)).abs() < 1e-12, "{l:?}");
        let service = LatencyService::new(PathBuf::from("/no/such/program"), vec![]);
        assert_eq!(service.latency(&two_block_net(), &s).unwrap(), l, "no child for a full table");
    }

    #[test]
    fn anything_short_of_a_full_calibrated_table_goes_to_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let s = setting(dir.path().join("t.json"));
        assert_eq!(predict_from_file(&two_block_net(), &s), None, "no file");
        let mut table = full_table(&s);
        table.fit = None;
        table.save(s.table.as_deref().unwrap()).unwrap();
        assert_eq!(predict_from_file(&two_block_net(), &s), None, "not calibrated");
        let mut table = full_table(&s);
        table.entries.pop_first();
        table.save(s.table.as_deref().unwrap()).unwrap();
        assert_eq!(predict_from_file(&two_block_net(), &s), None, "a part missing");
        full_table(&s).save(s.table.as_deref().unwrap()).unwrap();
        assert_eq!(
            predict_from_file(&two_block_net(), &LatencySetting { threads: 4, ..s.clone() }),
            None,
            "other threads"
        );
        let service = LatencyService::new(PathBuf::from("/no/such/program"), vec![]);
        let err =
            service.latency(&two_block_net(), &LatencySetting { method: LatencyMethod::Measure, ..s }).unwrap_err();
        assert!(err.contains("/no/such/program") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let r = LatencyRequest { arch: two_block_net(), setting: setting(PathBuf::from("t.json")) };
        let back: LatencyRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let json = serde_json::to_value(LatencySetting::default()).unwrap();
        assert_eq!(json, serde_json::json!({"method": "predict", "threads": 1, "resolution": 224}));
    }
}
