//! Predicting with another device's table: a table built by `nas latency --build-table` on a
//! phone, a Raspberry Pi or an ARM server, copied here, predicts that device's latencies on
//! any machine. Nothing is measured here (this machine's timings say nothing about the
//! device), so the table must be calibrated and hold every part asked for.
//!
//! Its key is checked against this build and the target's input shape, not this machine: a
//! table from another mixnas or kernel version, resolution or batch, or an uncalibrated one,
//! is refused in one line. A table of this CPU goes to [`super::TablePredictor`] instead, which
//! checks the full key and can add parts.

use std::path::{Path, PathBuf};

use space::Arch;

use super::parts::parts;
use super::predict::Prediction;
use super::table::{Machine, Table};
use super::{Latency, LatencyError, LatencySource, MeasureConfig};

/// A calibrated table measured on another CPU, for this build and shape.
#[derive(Clone, Debug)]
pub struct DeviceTable {
    path: PathBuf,
    table: Table,
}

impl DeviceTable {
    /// The table at `path` for networks measured as `cfg` at `threads` threads: `None` when it
    /// was measured on this CPU (this machine's own table), an error when it cannot be used.
    pub fn open(path: &Path, cfg: &MeasureConfig, threads: usize) -> Result<Option<Self>, LatencyError> {
        let table = Table::read(path)?;
        if table.machine.is_this_cpu() {
            return Ok(None);
        }
        let refuse = |message: String| LatencyError::File { path: path.to_path_buf(), message };
        let expected = Machine::with_threads(cfg, threads);
        if let Some((field, found, wanted)) = table.machine.mismatch(&expected) {
            return Err(refuse(format!(
                "machine.{field} is \"{found}\" but this nas needs \"{wanted}\": not using a table from another mixnas/kernel version or input shape (rebuild it on its device: nas latency --build-table --table FILE)"
            )));
        }
        if table.fit.is_none() {
            return Err(refuse(
                "fit is null: the table was never calibrated (finish it on its device: nas latency --build-table --table FILE)"
                    .into(),
            ));
        }
        Ok(Some(Self { path: path.to_path_buf(), table }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device the table was measured on.
    pub fn machine(&self) -> &Machine {
        &self.table.machine
    }

    /// The device in words: "<cpu model>, <arch>, <threads> thread(s)".
    pub fn describe(&self) -> String {
        let m = self.machine();
        format!("{}, {}, {} thread(s)", m.cpu, m.arch, m.threads)
    }

    /// The device's predicted latency of `arch`; a part the table lacks is named in the error.
    pub fn latency(&self, arch: &Arch) -> Result<Latency, LatencyError> {
        let m = self.machine();
        let parts = parts(arch, m.resolution);
        let Some(p) = Prediction::from_table(&self.table, &parts) else {
            let key = parts.iter().map(|p| p.key()).find(|k| !self.table.entries.contains_key(k)).unwrap_or_default();
            return Err(LatencyError::File {
                path: self.path.clone(),
                message: format!(
                    "no entry for part \"{key}\" of {}: the table must be extended on its device (nas latency --build-table --space SPACE --table FILE)",
                    arch.name.as_deref().unwrap_or("the architecture")
                ),
            });
        };
        Ok(Latency {
            ms: p.ms,
            source: LatencySource::Predicted,
            resolution: m.resolution,
            threads: m.threads,
            measurement: None,
            prediction: Some(p),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Fit;
    use testkit::arch::two_block_net;

    fn cfg() -> MeasureConfig {
        MeasureConfig { resolution: 32, ..Default::default() }
    }

    /// A calibrated table of every part of the test network, as measured on a Raspberry Pi.
    fn pi_table() -> Table {
        let mut machine = Machine::with_threads(&cfg(), 4);
        (machine.cpu, machine.arch) = ("Raspberry Pi 4 Model B Rev 1.4 (ARM Cortex-A72)".into(), "aarch64".into());
        let mut table = Table::new(machine);
        for (i, part) in parts(&two_block_net(), 32).iter().enumerate() {
            table.entries.insert(part.key(), 1.0 + i as f64);
        }
        table.fit = Some(Fit { scale: 2.0, constant_ms: 3.0, networks: 4 });
        table
    }

    fn saved(table: &Table) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pi.json");
        table.save(&path).unwrap();
        (dir, path)
    }

    #[test]
    fn another_devices_table_predicts_its_latency_here() {
        let table = pi_table();
        let (_dir, path) = saved(&table);
        let device = DeviceTable::open(&path, &cfg(), 1).unwrap().expect("another CPU's table");
        assert_eq!(device.describe(), "Raspberry Pi 4 Model B Rev 1.4 (ARM Cortex-A72), aarch64, 4 thread(s)");
        let l = device.latency(&two_block_net()).unwrap();
        let sum: f64 = table.entries.values().sum();
        assert_eq!((l.source, l.threads, l.resolution), (LatencySource::Predicted, 4, 32));
        assert!((l.ms - (2.0 * sum + 3.0)).abs() < 1e-12, "{l:?}");
    }

    #[test]
    fn this_machines_own_table_is_left_to_the_predictor() {
        let (_dir, path) = saved(&Table::new(Machine::with_threads(&cfg(), 2)));
        assert!(DeviceTable::open(&path, &cfg(), 1).unwrap().is_none());
    }

    #[test]
    fn another_version_shape_or_an_uncalibrated_table_is_refused_in_one_line() {
        type Change = fn(&mut Table);
        let cases: [(Change, &str); 4] = [
            (|t| t.machine.mixnas = "0.0.1+kdeadbeef".into(), "machine.mixnas is \"0.0.1+kdeadbeef\""),
            (|t| t.machine.resolution = 224, "machine.resolution is \"224\" but this nas needs \"32\""),
            (|t| t.machine.batch = 8, "machine.batch is \"8\""),
            (|t| t.fit = None, "fit is null"),
        ];
        for (change, expected) in cases {
            let mut table = pi_table();
            change(&mut table);
            let (_dir, path) = saved(&table);
            let line = DeviceTable::open(&path, &cfg(), 1).unwrap_err().to_string();
            assert!(line.contains("pi.json") && line.contains(expected) && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn a_part_the_table_lacks_is_named() {
        let mut table = pi_table();
        let (key, _) = table.entries.pop_last().unwrap();
        let (_dir, path) = saved(&table);
        let device = DeviceTable::open(&path, &cfg(), 1).unwrap().unwrap();
        let line = device.latency(&two_block_net()).unwrap_err().to_string();
        assert!(line.contains(&format!("no entry for part \"{key}\"")) && !line.contains('\n'), "{line}");
    }
}
