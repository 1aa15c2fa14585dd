//! The lookup table file: per-part latencies measured on one machine, the fitted correction,
//! and the key that says which machine and setting they are for.
//!
//! A file whose key differs from this process's (another CPU, thread count, mixnas version,
//! resolution or batch) is refused with one line, never used silently: its numbers would be
//! wrong without any sign of it. The default file name carries the key, so the default location
//! only holds a matching table; a mismatch means an explicit `--table FILE` from elsewhere.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cpu::cpu_model;
use super::nominal::{unix_now, Readings};
use super::{LatencyError, MeasureConfig};

/// The `format` value of a table file.
pub const TABLE_FORMAT: &str = "mixnas.latency-table/2";

/// What a table is valid for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// CPU model name from /proc/cpuinfo (see `cpu.rs`).
    pub cpu: String,
    /// `std::env::consts::ARCH` of the build that measured it; tables from before it was
    /// recorded were all x86_64.
    #[serde(default = "x86_64")]
    pub arch: String,
    pub threads: usize,
    /// `CARGO_PKG_VERSION` of the evaluator that measured it.
    pub mixnas: String,
    pub resolution: usize,
    pub batch: usize,
}

/// Measured-vs-summed correction: `predicted = scale * sum(entries) + constant_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fit {
    pub scale: f64,
    pub constant_ms: f64,
    /// Whole networks measured for the fit.
    pub networks: usize,
}

impl Default for Fit {
    /// No correction, for a table not calibrated yet.
    fn default() -> Self {
        Self { scale: 1.0, constant_ms: 0.0, networks: 0 }
    }
}

/// A latency table: `entries` are part keys (see `parts.rs`) to milliseconds; `bases` are the
/// median times of the probe bases they were isolated against (each part is timed in pairs
/// with its base; the base times are kept to read the table, not reused).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub format: String,
    pub machine: Machine,
    pub fit: Option<Fit>,
    /// The speed reference's time at the table's nominal speed, the machine unloaded (see
    /// `nominal.rs`): entries, fit and predictions are times at this speed of the machine.
    pub reference_ms: Option<f64>,
    /// The reference readings the nominal comes from (empty in tables from before they were kept).
    #[serde(default)]
    pub reference_readings: Readings,
    pub entries: BTreeMap<String, f64>,
    pub bases: BTreeMap<String, f64>,
}

impl Machine {
    /// This process: its CPU, its thread pool, this build, and the measured input shape.
    pub fn this(cfg: &MeasureConfig) -> Self {
        Self::with_threads(cfg, super::threads())
    }

    /// This CPU and build at `threads` threads, which need not be this process's pool: the key
    /// of a target's table, read by a process that runs at another thread count.
    pub fn with_threads(cfg: &MeasureConfig, threads: usize) -> Self {
        let (cpu, arch) = (cpu_model(), std::env::consts::ARCH.to_string());
        Self { cpu, arch, threads, mixnas: build_id(), resolution: cfg.resolution, batch: cfg.batch }
    }

    /// Whether a table keyed `self` was measured by this build on inputs shaped as `other`'s,
    /// whatever the machine: the condition for predicting with another device's table.
    pub fn same_build_and_shape(&self, other: &Machine) -> bool {
        self.mismatch(other).is_none()
    }

    /// The first of version, resolution and batch that differs: (field, self's, other's).
    pub fn mismatch(&self, other: &Machine) -> Option<(&'static str, String, String)> {
        let fields = [
            ("mixnas", self.mixnas.clone(), other.mixnas.clone()),
            ("resolution", self.resolution.to_string(), other.resolution.to_string()),
            ("batch", self.batch.to_string(), other.batch.to_string()),
        ];
        fields.into_iter().find(|(_, a, b)| a != b)
    }

    /// Whether `self` is this CPU and architecture (at any setting).
    pub fn is_this_cpu(&self) -> bool {
        self.cpu == cpu_model() && self.arch == std::env::consts::ARCH
    }

    /// The key in words, for messages.
    pub fn describe(&self) -> String {
        format!(
            "cpu \"{}\" ({}), {} thread(s), mixnas {}, {}x{} batch {}",
            self.cpu, self.arch, self.threads, self.mixnas, self.resolution, self.resolution, self.batch
        )
    }

    /// Default table file: `$XDG_CACHE_HOME/mixnas/latency-<cpu hash>-v<version>-t<threads>-r<res>-b<batch>.json`
    /// (`~/.cache` when XDG_CACHE_HOME is unset).
    pub fn default_path(&self) -> PathBuf {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        let name = format!(
            "latency-{:016x}-v{}-t{}-r{}-b{}.json",
            fnv1a(format!("{}/{}", self.arch, self.cpu).as_bytes()),
            self.mixnas,
            self.threads,
            self.resolution,
            self.batch
        );
        cache.join("mixnas").join(name)
    }
}

/// This build as far as latency goes: the version and a fingerprint of the kernel and model
/// sources (evaluator/build.rs), e.g. `0.1.0+k1f2e3d4c`; a kernel change makes a new table.
pub fn build_id() -> String {
    format!("{}+k{}", env!("CARGO_PKG_VERSION"), env!("MIXNAS_KERNELS_FINGERPRINT"))
}

fn x86_64() -> String {
    "x86_64".into()
}

/// FNV-1a, a hash whose value never changes between builds (std's hasher may).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Table {
    pub fn new(machine: Machine) -> Self {
        let (entries, bases) = (BTreeMap::new(), BTreeMap::new());
        let reference_readings = Readings::default();
        Self { format: TABLE_FORMAT.into(), machine, fit: None, reference_ms: None, reference_readings, entries, bases }
    }

    /// Folds reference readings (milliseconds) into the nominal speed. When the nominal moves,
    /// every stored time (entries, bases, the fit's constant) is rescaled by new / old, so the
    /// table stays one machine speed throughout. Returns the nominal.
    pub fn observe(&mut self, readings: &[f64]) -> Option<f64> {
        let now = unix_now();
        if let (Some(old), true) = (self.reference_ms, self.reference_readings.fastest.is_empty()) {
            // A table from before readings were kept: its nominal counts as one reading.
            self.reference_readings.observe(&[old], now);
        }
        self.reference_readings.observe(readings, now);
        let new = self.reference_readings.nominal_ms()?;
        if let Some(old) = self.reference_ms.filter(|&old| old != new) {
            self.rescale(new / old);
        }
        self.reference_ms = Some(new);
        Some(new)
    }

    /// `ms` measured at a nominal reference time of `at_nominal_ms`, at this table's nominal.
    pub fn at_nominal(&self, ms: f64, at_nominal_ms: f64) -> f64 {
        self.reference_ms.map_or(ms, |nominal| ms * (nominal / at_nominal_ms))
    }

    fn rescale(&mut self, ratio: f64) {
        for ms in self.entries.values_mut().chain(self.bases.values_mut()) {
            *ms *= ratio;
        }
        if let Some(fit) = &mut self.fit {
            fit.constant_ms *= ratio;
        }
    }

    /// Reads `path` whatever machine it is keyed to (see [`Table::load`] for this machine's).
    pub fn read(path: &Path) -> Result<Self, LatencyError> {
        let file = |message: String| LatencyError::File { path: path.to_path_buf(), message };
        let bytes = std::fs::read(path).map_err(|e| file(e.to_string()))?;
        let table: Table = serde_json::from_slice(&bytes).map_err(|e| file(format!("not a latency table: {e}")))?;
        if table.format != TABLE_FORMAT {
            return Err(file(format!("unknown format \"{}\"; this mixnas reads \"{TABLE_FORMAT}\"", table.format)));
        }
        Ok(table)
    }

    /// Reads `path`, refusing a table keyed to anything but `here`.
    pub fn load(path: &Path, here: &Machine) -> Result<Self, LatencyError> {
        let table = Self::read(path)?;
        if &table.machine != here {
            return Err(LatencyError::Mismatch {
                path: path.into(),
                file: Box::new(table.machine),
                here: Box::new(here.clone()),
            });
        }
        Ok(table)
    }

    /// [`Table::load`], or an empty table when `path` does not exist.
    pub fn load_or_new(path: &Path, here: &Machine) -> Result<Self, LatencyError> {
        match path.exists() {
            true => Self::load(path, here),
            false => Ok(Self::new(here.clone())),
        }
    }

    /// Writes atomically: a temporary file beside `path`, fsynced, then renamed over it, so a
    /// reader sees the old table or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), LatencyError> {
        let file = |e: std::io::Error| LatencyError::File { path: path.to_path_buf(), message: e.to_string() };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(file)?;
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let json = serde_json::to_string_pretty(self).expect("a table always serialises");
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(json.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename itself is durable only once the directory is synced.
            std::fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine::this(&MeasureConfig { resolution: 32, ..Default::default() })
    }

    #[test]
    fn a_table_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.json");
        let mut t = Table::new(machine());
        t.entries.insert("stem r32 c3-16 k3 s2 sym".into(), 0.125);
        t.bases.insert("base r16 c16 sym".into(), 0.0625);
        t.fit = Some(Fit { scale: 1.1, constant_ms: 0.3, networks: 3 });
        t.reference_ms = Some(31.5);
        t.save(&path).unwrap();
        assert_eq!(Table::load(&path, &machine()).unwrap(), t);
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["t.json"], "no temporary file left behind");
    }

    /// A table at nominal 8 ms whose readings then show 4 ms: every stored time halves (powers
    /// of two, so exactly), and a prediction with it is the old one at the new speed.
    #[test]
    fn a_faster_nominal_rescales_every_stored_time_exactly() {
        let mut t = Table::new(machine());
        assert_eq!(t.observe(&[8.0; 20]), Some(8.0));
        t.entries.insert("a".into(), 3.0);
        t.entries.insert("b".into(), 1.25);
        t.bases.insert("base".into(), 10.0);
        t.fit = Some(Fit { scale: 1.5, constant_ms: 0.75, networks: 4 });
        let before = t.clone();
        assert_eq!(t.observe(&[9.0; 50]), Some(8.0), "slower readings leave it");
        assert_eq!((&t.entries, t.fit), (&before.entries, before.fit));
        assert_eq!(t.observe(&[4.0; super::super::FASTEST]), Some(4.0));
        assert_eq!(t.entries.values().copied().collect::<Vec<_>>(), [1.5, 0.625]);
        assert_eq!((t.bases["base"], t.fit.unwrap().constant_ms, t.fit.unwrap().scale), (5.0, 0.375, 1.5));
        assert_eq!(t.at_nominal(12.0, 8.0), 6.0, "a time measured at the old nominal, at the new");
        assert_eq!(t.reference_readings.count, 20 + 50 + super::super::FASTEST as u64);
    }

    /// A table written before readings were kept (no `reference_readings`) reads, and its
    /// nominal counts as one reading: a faster machine moves it.
    #[test]
    fn a_table_without_readings_reads_and_converges() {
        let mut t = Table::new(machine());
        t.reference_ms = Some(6.0);
        t.entries.insert("a".into(), 12.0);
        let mut json = serde_json::to_value(&t).unwrap();
        json.as_object_mut().unwrap().remove("reference_readings");
        let mut old: Table = serde_json::from_value(json).unwrap();
        assert_eq!((old.reference_ms, old.reference_readings.count), (Some(6.0), 0));
        assert_eq!(old.observe(&[3.0; 2]), Some(3.0));
        assert_eq!((old.entries["a"], old.reference_readings.count), (6.0, 3));
    }

    #[test]
    fn a_table_from_another_machine_or_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        for change in [|m: &mut Machine| m.cpu.push('X'), |m: &mut Machine| m.mixnas = "0.0.0-old".into()] {
            let mut other = machine();
            change(&mut other);
            Table::new(other).save(&path).unwrap();
            let err = Table::load_or_new(&path, &machine()).unwrap_err();
            assert!(matches!(err, LatencyError::Mismatch { .. }), "{err}");
            let line = err.to_string();
            assert!(!line.contains('\n') && line.contains("t.json") && line.contains("--build-table"), "{line}");
        }
    }

    #[test]
    fn another_device_has_the_same_build_and_shape_until_version_resolution_or_batch_differ() {
        let here = machine();
        let device = Machine { cpu: "ARM Cortex-A72".into(), arch: "aarch64".into(), threads: 4, ..here.clone() };
        assert!(device.same_build_and_shape(&here) && !device.is_this_cpu() && here.is_this_cpu());
        for other in [
            Machine { mixnas: "0.0.1+k0".into(), ..device.clone() },
            Machine { resolution: 224, ..device.clone() },
            Machine { batch: 2, ..device.clone() },
        ] {
            assert!(!other.same_build_and_shape(&here), "{other:?}");
        }
    }

    #[test]
    fn a_machine_without_an_arch_is_x86_64() {
        let mut json = serde_json::to_value(machine()).unwrap();
        json.as_object_mut().unwrap().remove("arch");
        assert_eq!(serde_json::from_value::<Machine>(json).unwrap().arch, "x86_64");
    }

    #[test]
    fn the_default_path_names_the_key() {
        let name = machine().default_path().file_name().unwrap().to_string_lossy().into_owned();
        let threads = super::super::threads();
        assert!(name.starts_with("latency-") && name.ends_with(&format!("-t{threads}-r32-b1.json")), "{name}");
    }
}
