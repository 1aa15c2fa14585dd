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
    /// The speed reference's time when the table was begun (see `speed.rs`): entries, fit and
    /// predictions are times at this speed of the machine.
    pub reference_ms: Option<f64>,
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
        Self { format: TABLE_FORMAT.into(), machine, fit: None, reference_ms: None, entries, bases }
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
