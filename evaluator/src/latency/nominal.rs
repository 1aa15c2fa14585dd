//! The table's nominal speed: the machine unloaded, as the speed reference reads it.
//!
//! Every reading of the reference a table's measurements take is folded in, and the nominal is
//! the median of the [`FASTEST`] fastest readings ever seen: a low percentile that only moves
//! down, and that a handful of lucky readings cannot drag. A table begun while other work
//! loaded the machine therefore converges to the machine's unloaded speed as faster readings
//! arrive, instead of keeping the load in every number forever. The table's entries are stored
//! at the nominal speed, so the table rescales them when it moves (`Table::observe`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Fastest readings kept; the nominal is their median.
pub const FASTEST: usize = 31;

/// The reference readings behind a table's nominal speed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readings {
    /// Readings seen (a table from before readings were kept counts its nominal as one).
    pub count: u64,
    /// The fastest readings seen, ascending, at most [`FASTEST`].
    pub fastest: Vec<f64>,
    /// Unix seconds of the first reading kept and of the nominal's last move.
    pub first_unix: Option<u64>,
    pub moved_unix: Option<u64>,
}

impl Readings {
    /// The nominal: the median of the fastest readings (the lower one of an even count, so it
    /// is always a reading); `None` before any.
    pub fn nominal_ms(&self) -> Option<f64> {
        self.fastest.get(self.fastest.len().saturating_sub(1) / 2).copied()
    }

    /// Folds `readings` (milliseconds; non-finite or non-positive ones are dropped) in at
    /// unix time `now`; returns whether the nominal moved.
    pub fn observe(&mut self, readings: &[f64], now: u64) -> bool {
        let before = self.nominal_ms();
        let valid = readings.iter().copied().filter(|r| r.is_finite() && *r > 0.0);
        for r in valid {
            self.count += 1;
            let at = self.fastest.partition_point(|&f| f <= r);
            if at < FASTEST {
                self.fastest.insert(at, r);
                self.fastest.truncate(FASTEST);
            }
        }
        self.first_unix = self.first_unix.or(Some(now).filter(|_| self.count > 0));
        let moved = self.nominal_ms() != before;
        if moved {
            self.moved_unix = Some(now);
        }
        moved
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nominal_is_the_median_of_the_fastest_readings_and_only_moves_down() {
        let mut r = Readings::default();
        assert_eq!(r.nominal_ms(), None);
        assert!(r.observe(&[9.0, 7.0, 8.0], 100));
        assert_eq!((r.nominal_ms(), r.count, r.first_unix, r.moved_unix), (Some(8.0), 3, Some(100), Some(100)));
        // Slower readings never move it once FASTEST faster ones are kept.
        let loaded: Vec<f64> = (0..FASTEST).map(|i| 6.0 + i as f64 / 64.0).collect();
        assert!(r.observe(&loaded, 200));
        let before = r.nominal_ms();
        assert!(!r.observe(&[50.0; 100], 300));
        assert_eq!((r.nominal_ms(), r.moved_unix, r.count), (before, Some(200), 3 + FASTEST as u64 + 100));
        assert_eq!(r.fastest.len(), FASTEST);
        assert!(r.fastest.windows(2).all(|w| w[0] <= w[1]));
    }

    /// A table begun under load (readings near 6 ms) converges to the idle speed (4 ms) once
    /// more than half of FASTEST idle readings arrive, whatever came before; one lucky reading
    /// does not move it.
    #[test]
    fn a_nominal_begun_under_load_converges_to_the_fastest_readings() {
        let mut r = Readings::default();
        r.observe(&[6.0; 200], 0);
        assert_eq!(r.nominal_ms(), Some(6.0));
        r.observe(&[1.0], 1);
        assert_eq!(r.nominal_ms(), Some(6.0), "one outlier is not the machine's speed");
        r.observe(&[4.0; FASTEST / 2], 2);
        assert_eq!(r.nominal_ms(), Some(4.0));
        r.observe(&[f64::NAN, -1.0, 0.0, f64::INFINITY], 3);
        assert_eq!((r.nominal_ms(), r.count), (Some(4.0), 201 + FASTEST as u64 / 2), "invalid readings are dropped");
    }
}
