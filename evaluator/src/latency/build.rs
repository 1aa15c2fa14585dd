//! Building a table for a search space: find the parts its architectures use, count them,
//! measure them all when there are few enough (otherwise leave the rest to be measured on first
//! use), then calibrate the fit on a few whole networks from the same space.
//!
//! The space is only known through `decisions` and `decode`, so reachable parts are found by
//! decoding many uniform samples; the count is a lower bound, and `new_in_second_half > 0` says
//! the sampling had not saturated. Any part it missed is measured when first predicted.

use rand::{rngs::StdRng, Rng, SeedableRng};
use space::{Arch, SearchSpace};

use super::parts::{parts, KeyedPart};
use super::predict::TablePredictor;
use super::table::Fit;
use super::LatencyError;

/// Seed offset of the calibration networks, so they differ from validation samples of the
/// same seed.
const CALIBRATION_STREAM: u64 = 0xCA11_B4A7_E000_0000;

#[derive(Clone, Copy, Debug)]
pub struct BuildConfig {
    /// Architectures decoded to find the reachable parts.
    pub coverage_samples: usize,
    /// Measure every reachable part up front only when there are at most this many.
    pub max_parts: usize,
    /// Whole networks measured for the fit.
    pub calibration_networks: usize,
    pub seed: u64,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self { coverage_samples: 2000, max_parts: 600, calibration_networks: 12, seed: 0 }
    }
}

/// Distinct parts found in a space by sampling.
#[derive(Clone, Debug)]
pub struct SpaceParts {
    pub parts: Vec<KeyedPart>,
    pub samples: usize,
    /// Parts first seen in the second half of the samples (0: coverage looks complete).
    pub new_in_second_half: usize,
}

/// What a build did.
#[derive(Clone, Copy, Debug)]
pub struct BuildReport {
    /// Reachable parts found (see [`SpaceParts`]).
    pub reachable: usize,
    /// Parts measured by this build (entries already in the table are kept).
    pub measured: usize,
    /// Whether the reachable set was too large and is left to on-demand measurement.
    pub lazy: bool,
    pub fit: Fit,
}

/// Progress of a build: which stage, done, total, and what is being measured.
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize, &str);

/// `n` architectures drawn uniformly per decision from `space` with `seed`; choice vectors that
/// fail to decode are redrawn (up to 100 times per sample).
pub fn sample_archs(space: &SearchSpace, n: usize, seed: u64) -> Result<Vec<Arch>, LatencyError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut last = None;
        for _ in 0..100 {
            let choices: Vec<usize> =
                space.decisions.iter().map(|d| rng.gen_range(0..d.options.len().max(1))).collect();
            match space.decode(&choices) {
                Ok(arch) => {
                    out.push(arch);
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(LatencyError::Space(e.to_string()));
        }
    }
    Ok(out)
}

/// The distinct parts of `samples` architectures of `space` at `resolution`.
pub fn space_parts(
    space: &SearchSpace,
    resolution: usize,
    samples: usize,
    seed: u64,
) -> Result<SpaceParts, LatencyError> {
    let archs = sample_archs(space, samples, seed)?;
    let mut seen = std::collections::BTreeSet::new();
    let (mut found, mut new_in_second_half) = (Vec::new(), 0);
    for (i, arch) in archs.iter().enumerate() {
        for p in parts(arch, resolution) {
            if seen.insert(p.key()) {
                new_in_second_half += usize::from(2 * i >= samples);
                found.push(p);
            }
        }
    }
    Ok(SpaceParts { parts: found, samples, new_in_second_half })
}

/// Fills `predictor`'s table for `space` by the rules of the module doc.
pub fn build_table(
    predictor: &TablePredictor,
    space: &SearchSpace,
    cfg: &BuildConfig,
    progress: Progress,
) -> Result<BuildReport, LatencyError> {
    let res = predictor.network_config().resolution;
    let reachable = space_parts(space, res, cfg.coverage_samples, cfg.seed)?;
    let lazy = reachable.parts.len() > cfg.max_parts;
    let calibration = sample_archs(space, cfg.calibration_networks, cfg.seed ^ CALIBRATION_STREAM)?;
    let wanted: Vec<KeyedPart> = match lazy {
        true => calibration.iter().flat_map(|a| parts(a, res)).collect(),
        false => reachable.parts.clone(),
    };
    let measured = predictor.add_missing(&wanted, |i, n, key| progress("parts", i, n, key))?;
    let fit = predictor.calibrate(&calibration, |i, n, name| progress("networks", i, n, name))?;
    Ok(BuildReport { reachable: reachable.parts.len(), measured, lazy, fit })
}
