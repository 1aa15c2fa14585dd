//! The table predictor: `predicted = scale * sum(part entries) + constant`, parts missing from
//! the table measured on first use and added to it, the file rewritten after each addition.
//!
//! Isolated parts miss what a whole network pays once (input handling, first-touch memory, pool
//! wake-ups) and keep a little probe overhead each; the scale and constant, fitted by least
//! squares on a few whole-network measurements ([`TablePredictor::calibrate`]), correct both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use candle_core::Device;
use kernels::stats::median;
use serde::{Deserialize, Serialize};
use space::Arch;

use super::measure::{self, MeasureConfig};
use super::parts::{parts, KeyedPart};
use super::speed::{Relative, SpeedNow, SpeedReference};
use super::table::{Fit, Machine, Table};
use super::LatencyError;
use crate::model::{EvalNet, MixNet};

/// A table-backed latency model for this machine; shareable across threads.
pub struct TablePredictor {
    table: Mutex<Table>,
    path: Option<PathBuf>,
    /// Whole-network measurements (calibration); its shape is the table's key.
    network: MeasureConfig,
    /// Per-part measurements.
    part: MeasureConfig,
    /// Built on the first measurement (a MixNet-S; predictions from a full table never need it).
    reference: OnceLock<SpeedReference>,
}

/// A part's time at the nominal reference time `nominal_ms`, its base's, and the reference
/// readings taken beside them.
struct PartTime {
    ms: f64,
    base: Option<(String, f64)>,
    nominal_ms: f64,
    references: Vec<f64>,
}

/// One prediction and how it was made.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub ms: f64,
    /// Sum of the part entries before the fit.
    pub sum_ms: f64,
    /// Parts that were missing and measured for this prediction.
    pub measured_parts: usize,
    /// Whether a fit from whole-network measurements was applied.
    pub calibrated: bool,
}

impl Prediction {
    /// `scale * sum(entries of parts) + constant` (no correction before calibration); `None`
    /// when a part has no entry. Nothing is measured, so `measured_parts` is 0.
    pub fn from_table(table: &Table, parts: &[KeyedPart]) -> Option<Self> {
        if !parts.iter().all(|p| table.entries.contains_key(&p.key())) {
            return None;
        }
        let sum_ms: f64 = parts.iter().map(|p| table.entries[&p.key()]).sum();
        let fit = table.fit.unwrap_or_default();
        let ms = fit.scale * sum_ms + fit.constant_ms;
        Some(Prediction { ms, sum_ms, measured_parts: 0, calibrated: table.fit.is_some() })
    }
}

impl TablePredictor {
    /// Opens the table at `path` (default: [`Machine::default_path`]) for networks measured as
    /// `network`; an absent file starts an empty table, one for another machine is refused.
    pub fn open(path: Option<&Path>, network: MeasureConfig) -> Result<Self, LatencyError> {
        let machine = Machine::this(&network);
        let path = path.map_or_else(|| machine.default_path(), Path::to_path_buf);
        let table = Table::load_or_new(&path, &machine)?;
        Ok(Self::with_table(table, Some(path), network))
    }

    /// A predictor over `table` that never touches a file (tests, throwaway tables).
    pub fn in_memory(table: Table, network: MeasureConfig) -> Self {
        Self::with_table(table, None, network)
    }

    fn with_table(table: Table, path: Option<PathBuf>, network: MeasureConfig) -> Self {
        // Parts are small: more repeats fit in a short bound, and quantiles of differences need them.
        let part = MeasureConfig { warmup: 2, repeats: 21, max_seconds: 3.0, ..network };
        Self { table: Mutex::new(table), path, network, part, reference: OnceLock::new() }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn network_config(&self) -> &MeasureConfig {
        &self.network
    }

    /// A copy of the table as it is now.
    pub fn table(&self) -> Table {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Predicts `arch` at the table's resolution, measuring and adding missing parts.
    pub fn predict(&self, arch: &Arch) -> Result<Prediction, LatencyError> {
        let parts = parts(arch, self.network.resolution);
        let measured_parts = self.add_missing(&parts, |_, _, _| {})?;
        let prediction = Prediction::from_table(&self.lock(), &parts).expect("every part was just added");
        Ok(Prediction { measured_parts, ..prediction })
    }

    /// Measures every part of `parts` not in the table yet (each once), saving after each, and
    /// reports `(done, total, key)` before each measurement. Returns how many were measured.
    pub fn add_missing(
        &self,
        parts: &[KeyedPart],
        mut progress: impl FnMut(usize, usize, &str),
    ) -> Result<usize, LatencyError> {
        let missing = self.missing(parts);
        for (i, part) in missing.iter().enumerate() {
            let key = part.key();
            progress(i, missing.len(), &key);
            let m = self.measure_part(part)?;
            let mut table = self.lock();
            table.observe(&m.references);
            let ms = table.at_nominal(m.ms, m.nominal_ms);
            table.entries.insert(key, ms);
            if let Some((key, ms)) = m.base {
                let ms = table.at_nominal(ms, m.nominal_ms);
                table.bases.insert(key, ms);
            }
            self.save(&table)?;
        }
        Ok(missing.len())
    }

    /// The distinct parts of `parts` without an entry, in first-seen order.
    pub fn missing(&self, parts: &[KeyedPart]) -> Vec<KeyedPart> {
        let table = self.lock();
        let mut seen = BTreeSet::new();
        parts.iter().filter(|p| !table.entries.contains_key(&p.key()) && seen.insert(p.key())).cloned().collect()
    }

    /// One part: the median, over adjacent (probe, base, reference) triples, of probe minus base
    /// at nominal speed. Timing them back to back makes each difference see the same machine
    /// state, so load that comes and goes on a shared machine cancels instead of landing in the
    /// entry, and the reference right after says how fast the machine was for that triple.
    fn measure_part(&self, part: &KeyedPart) -> Result<PartTime, LatencyError> {
        let template = space::presets::mixnet_s();
        let (probe, res) = part.probe(&template);
        let cfg = MeasureConfig { resolution: res, ..self.part };
        let probe = (MixNet::new(&probe, 0, &Device::Cpu)?.eval_net()?, measure::input(&cfg)?);
        let run = |(net, x): &(EvalNet, candle_core::Tensor)| -> candle_core::Result<f64> {
            let t = Instant::now();
            net.forward(x)?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let (reference, nominal_ms) = self.speed()?;
        let Some((key, base, res)) = part.base(&template) else {
            let pairs = measure::repeat(&cfg, || Ok((run(&probe)?, reference.forward_ms()?)))?;
            let times = pairs.iter().map(|&(ms, r)| ms * nominal_ms / r).collect();
            let references = pairs.iter().map(|p| p.1).collect();
            return Ok(PartTime { ms: measure::summarise(times).q25_ms, base: None, nominal_ms, references });
        };
        let base = (
            MixNet::new(&base, 0, &Device::Cpu)?.eval_net()?,
            measure::input(&MeasureConfig { resolution: res, ..cfg })?,
        );
        let triples = measure::repeat(&cfg, || {
            let (p, b) = (run(&probe)?, run(&base)?);
            Ok((p - b, b, reference.forward_ms()?))
        })?;
        let (diffs, bases): (Vec<f64>, Vec<f64>) =
            triples.iter().map(|&(d, b, r)| (d * nominal_ms / r, b * nominal_ms / r)).unzip();
        let references = triples.iter().map(|t| t.2).collect();
        // Noise can make a tiny part look negative; it cannot cost less than nothing.
        let ms = median(&diffs).max(0.0);
        Ok(PartTime { ms, base: Some((key, median(&bases))), nominal_ms, references })
    }

    /// The speed reference and the table's nominal time, timing the reference for a first
    /// nominal (saved) on a table's first use.
    fn speed(&self) -> Result<(&SpeedReference, f64), LatencyError> {
        if self.reference.get().is_none() {
            let _ = self.reference.set(SpeedReference::new(&self.network)?);
        }
        let reference = self.reference.get().expect("set above");
        if let Some(ms) = self.lock().reference_ms {
            return Ok((reference, ms));
        }
        let readings = reference.readings(&self.network)?;
        let mut table = self.lock();
        let ms = table.observe(&readings).expect("the reference always reads");
        self.save(&table)?;
        Ok((reference, ms))
    }

    /// Measures `arch` as whole networks are measured for this table: timed in pairs with the
    /// speed reference, the raw times and the times adjusted to the table's nominal speed (the
    /// reference's readings folded in first).
    pub fn measure(&self, arch: &Arch) -> Result<Relative, LatencyError> {
        let (reference, nominal_ms) = self.speed()?;
        let net = MixNet::new(arch, 0, &Device::Cpu)?;
        let (rel, readings) = reference.relative(&net, &measure::input(&self.network)?, &self.network, nominal_ms)?;
        let mut table = self.lock();
        table.observe(&readings);
        self.save(&table)?;
        Ok(Relative { adjusted_ms: table.at_nominal(rel.adjusted_ms, nominal_ms), ..rel })
    }

    /// How fast the machine is now against the table's nominal: the reference timed for about
    /// `seconds` (its readings folded into the nominal first, and saved).
    pub fn speed_now(&self, seconds: f64) -> Result<SpeedNow, LatencyError> {
        let (reference, _) = self.speed()?;
        let cfg = MeasureConfig { warmup: 2, repeats: 5000, max_seconds: seconds, ..self.network };
        let readings = measure::repeat(&cfg, || reference.forward_ms())?;
        let mut table = self.lock();
        let nominal_ms = table.observe(&readings).expect("the reference always reads");
        self.save(&table)?;
        Ok(SpeedNow { reference_ms: median(&readings), nominal_ms, readings: readings.len() })
    }

    /// Fits the scale and constant on whole-network speed-adjusted 25th percentiles of `archs`
    /// (missing parts measured first), stores the fit and returns it. Reports `(done, total, name)` per network.
    pub fn calibrate(&self, archs: &[Arch], mut progress: impl FnMut(usize, usize, &str)) -> Result<Fit, LatencyError> {
        let mut points = Vec::with_capacity(archs.len());
        for (i, arch) in archs.iter().enumerate() {
            progress(i, archs.len(), arch.name.as_deref().unwrap_or("network"));
            self.predict(arch)?;
            let adjusted_ms = self.measure(arch)?.adjusted_ms;
            points.push((arch, adjusted_ms, self.lock().reference_ms.expect("set by measuring")));
        }
        // The nominal may have moved while measuring: every point at the final one.
        let mut table = self.lock();
        let points: Vec<(f64, f64)> = points
            .iter()
            .map(|&(arch, ms, at)| {
                let sum =
                    Prediction::from_table(&table, &parts(arch, self.network.resolution)).expect("predicted above");
                (sum.sum_ms, table.at_nominal(ms, at))
            })
            .collect();
        let fit = fit(&points);
        table.fit = Some(fit);
        self.save(&table)?;
        Ok(fit)
    }

    fn save(&self, table: &Table) -> Result<(), LatencyError> {
        self.path.as_deref().map_or(Ok(()), |p| table.save(p))
    }
}

/// Least squares `measured = scale * sum + constant` over `(sum, measured)` points. With fewer
/// than two distinct sums, or a scale outside [0.5, 2] (a fit chasing noise), the scale is 1 and
/// the constant is the mean residual. A negative constant would predict a tiny network below
/// zero, so then the line goes through the origin instead (least squares, or the ratio of means
/// when that slope chases noise too).
pub fn fit(points: &[(f64, f64)]) -> Fit {
    let n = points.len() as f64;
    let networks = points.len();
    if networks == 0 {
        return Fit::default();
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let plausible = |scale: f64| scale.is_finite() && (0.5..=2.0).contains(&scale);
    let scale = sxy / sxx;
    let affine = match plausible(scale) && sxx > 1e-12 * mx * mx {
        true => Fit { scale, constant_ms: my - scale * mx, networks },
        false => Fit { scale: 1.0, constant_ms: my - mx, networks },
    };
    if affine.constant_ms >= 0.0 {
        return affine;
    }
    let through_origin = points.iter().map(|p| p.0 * p.1).sum::<f64>() / points.iter().map(|p| p.0 * p.0).sum::<f64>();
    let scale = if plausible(through_origin) { through_origin } else { my / mx };
    Fit { scale, constant_ms: 0.0, networks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::arch::two_block_net;

    fn cfg() -> MeasureConfig {
        MeasureConfig { resolution: 32, batch: 1, warmup: 1, repeats: 3, max_seconds: 5.0 }
    }

    #[test]
    fn missing_parts_are_measured_once_and_added() -> Result<(), LatencyError> {
        let p = TablePredictor::in_memory(Table::new(Machine::this(&cfg())), cfg());
        let arch = two_block_net();
        let n = parts(&arch, 32).len();
        let first = p.predict(&arch)?;
        assert_eq!(first.measured_parts, n);
        assert!(!first.calibrated);
        let t = p.table();
        assert!(t.reference_ms.is_some_and(|ms| ms > 0.0), "the nominal speed is set on first measurement");
        assert_eq!(t.entries.len(), n);
        assert!(t.entries.values().all(|v| v.is_finite() && *v >= 0.0));
        assert_eq!(p.predict(&arch)?.measured_parts, 0, "second prediction uses the table");
        Ok(())
    }

    #[test]
    fn prediction_is_the_sum_of_entries_with_the_fit() -> Result<(), LatencyError> {
        let arch = two_block_net();
        let mut table = Table::new(Machine::this(&cfg()));
        for (i, part) in parts(&arch, 32).iter().enumerate() {
            table.entries.insert(part.key(), 0.5 * (i + 1) as f64);
        }
        let sum = table.entries.values().sum::<f64>();
        table.fit = Some(Fit { scale: 1.25, constant_ms: 0.75, networks: 2 });
        let pr = TablePredictor::in_memory(table, cfg()).predict(&arch)?;
        assert_eq!(pr.measured_parts, 0);
        assert_eq!(pr.sum_ms, sum);
        assert!((pr.ms - (1.25 * sum + 0.75)).abs() < 1e-12 && pr.calibrated);
        Ok(())
    }

    #[test]
    fn additions_are_saved_to_the_table_file() -> Result<(), LatencyError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let p = TablePredictor::open(Some(&path), cfg())?;
        p.predict(&two_block_net())?;
        assert_eq!(Table::load(&path, &Machine::this(&cfg()))?, p.table());
        Ok(())
    }

    #[test]
    fn fit_recovers_a_line_and_falls_back_on_one_point() {
        let f = fit(&[(1.0, 2.5), (2.0, 3.7), (4.0, 6.1)]);
        assert!((f.scale - 1.2).abs() < 1e-9 && (f.constant_ms - 1.3).abs() < 1e-9, "{f:?}");
        let f = fit(&[(10.0, 12.0)]);
        assert_eq!((f.scale, f.constant_ms, f.networks), (1.0, 2.0, 1));
    }

    /// Measured times that grow faster than the sums (a negative intercept) would predict a
    /// tiny network below zero; the fit goes through the origin then, so nothing is negative.
    #[test]
    fn a_tiny_network_is_never_predicted_below_zero() {
        let points = [(1.0, 0.5), (2.0, 2.0), (4.0, 5.0)];
        let f = fit(&points);
        assert_eq!(f.constant_ms, 0.0);
        assert!((f.scale - 24.5 / 21.0).abs() < 1e-12, "{f:?}");
        assert!(f.scale * 0.01 + f.constant_ms > 0.0);
        let one_point_fast = fit(&[(10.0, 8.0)]);
        assert_eq!((one_point_fast.scale, one_point_fast.constant_ms), (0.8, 0.0));
    }
}
