//! A landscape: every point of a search space small enough to enumerate, scored by one
//! evaluator exactly as a search of that space would score it, written as a table file the
//! table evaluator reads (`--evaluator table:DIR/table.json:score`), so strategies can be
//! compared on it in seconds. The folder is `landscape.json` (the settings, checked on resume),
//! `rows.jsonl` (one fsynced line per scored point, the source of truth: a killed run resumes
//! losing at most the point it was scoring) and `table.json` (rewritten atomically whenever a
//! run stops). The table evaluator looks networks up by NAS-Bench-Macro code, so a space is
//! scored only when each of its points is a member of that family.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use space::{Arch, SearchSpace};

use crate::evaluate::{TrialEvaluator, TrialSpec};
use crate::proxy::ProxySettings;
use crate::results::{append_line, read_lines, write_json, write_or_check};
use crate::setup::EvaluatorKind;

pub const LANDSCAPE_FORMAT: &str = "mixnas.landscape/1";

/// The most points a landscape scores: about 14 hours at NASWOT's half a second each.
pub const MAX_POINTS: usize = 100_000;

/// The table's field holding the evaluator's score, as a percentage (the table evaluator reads
/// percentages and divides by 100, so a search on the table reads the score the evaluator gave).
pub const SCORE_FIELD: &str = "score";

/// Everything that decides a landscape's rows: a folder keeps one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LandscapeConfig {
    pub format: String,
    /// The space as given (`--space`).
    pub space: String,
    pub evaluator: EvaluatorKind,
    /// Drives the evaluator's data cut and NASWOT batch, its reference scale and each point's
    /// initialisation, as a search's seed does.
    pub seed: u64,
    pub data: String,
    /// Fingerprint of the loaded data (`none` where the evaluator reads none).
    pub data_fingerprint: String,
    pub proxy: ProxySettings,
    pub threads: usize,
}

/// One point of the space to score.
#[derive(Clone, Debug)]
pub struct Point {
    /// Its NAS-Bench-Macro code, the table's key.
    pub code: String,
    pub choices: Vec<usize>,
    pub arch: Arch,
}

/// One scored point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub code: String,
    /// Its place in the enumeration, the trial id its initialisation seed comes from.
    pub index: u64,
    /// The evaluator's number in [0, 1], what a search's reward reads.
    pub score: f64,
    pub latency_ms: f64,
    pub params: u64,
    pub macs: u64,
    pub wall_seconds: f64,
    /// The evaluator's extras (`naswot`: the raw log-determinant).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

/// Where a run stands after a newly scored point.
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub row: &'a Row,
    /// Points scored per second by this invocation.
    pub rate: f64,
}

impl Progress<'_> {
    /// Seconds left at this invocation's rate.
    pub fn eta_seconds(&self) -> f64 {
        (self.total - self.done) as f64 / self.rate
    }
}

/// The points of `space` in choice order (the first decision most significant), or one line
/// saying why it cannot be scored: more than [`MAX_POINTS`], a point that is not a
/// NAS-Bench-Macro network, or two points with one code. Non-canonical choice vectors are
/// skipped: they repeat a point.
pub fn points(space: &SearchSpace, spec: &str) -> Result<Vec<Point>, String> {
    let options = space.num_options();
    let count = options.iter().try_fold(1usize, |n, &o| n.checked_mul(o)).filter(|&n| n <= MAX_POINTS);
    let Some(count) = count else {
        return Err(format!(
            "--space {spec}: about 10^{:.1} points, too many to score one by one (at most {MAX_POINTS})",
            space.log10_size()
        ));
    };
    let mut out: Vec<Point> = Vec::new();
    let mut place_of_code: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..count {
        let mut rest = i;
        let mut choices = vec![0; options.len()];
        for (c, &o) in choices.iter_mut().zip(&options).rev() {
            (*c, rest) = (rest % o, rest / o);
        }
        if space.canonical(&choices).map_err(|e| e.to_string())? != choices {
            continue;
        }
        let arch = space.decode(&choices).map_err(|e| e.to_string())?;
        let code = space::family::nas_bench_macro_code(&arch).ok_or_else(|| {
            let name = arch.name.as_deref().unwrap_or("(unnamed)");
            format!("--space {spec}: point {name} is not a NAS-Bench-Macro network; the table evaluator looks networks up by that code, so only spaces of its networks can be scored")
        })?;
        if let Some(&twin) = place_of_code.get(&code) {
            let twin = &out[twin];
            return Err(format!(
                "--space {spec}: points {} and {} are both NAS-Bench-Macro code {code}; a table holds one entry per code",
                twin.arch.name.as_deref().unwrap_or("(unnamed)"),
                arch.name.as_deref().unwrap_or("(unnamed)")
            ));
        }
        place_of_code.insert(code.clone(), out.len());
        out.push(Point { code, choices, arch });
    }
    Ok(out)
}

/// Scores the points of `points` not yet in `dir`'s journal, in order, until all are done or
/// `stop(new)` says to (asked before each point with the count scored so far by this call),
/// then writes `table.json`. Returns the rows, in point order.
pub fn run(
    config: &LandscapeConfig,
    points: &[Point],
    evaluator: &dyn TrialEvaluator,
    dir: &Path,
    stop: &mut dyn FnMut(usize) -> bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<Row>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_or_check(&dir.join("landscape.json"), config)?;
    let journal = dir.join("rows.jsonl");
    let codes: BTreeSet<&str> = points.iter().map(|p| p.code.as_str()).collect();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for row in read_lines::<Row>(&journal)? {
        if !codes.contains(row.code.as_str()) {
            return Err(format!("{}: code {} is not a point of {}", journal.display(), row.code, config.space));
        }
        rows.insert(row.code.clone(), row);
    }
    let start = Instant::now();
    let mut new = 0;
    for (index, point) in points.iter().enumerate() {
        if rows.contains_key(&point.code) {
            continue;
        }
        if stop(new) {
            break;
        }
        let row = score(point, index as u64, config, evaluator)?;
        append_line(&journal, &row)?;
        new += 1;
        let rate = new as f64 / start.elapsed().as_secs_f64();
        progress(&Progress { done: rows.len() + 1, total: points.len(), row: &row, rate });
        rows.insert(row.code.clone(), row);
    }
    let ordered: Vec<Row> = points.iter().filter_map(|p| rows.remove(&p.code)).collect();
    write_json(&dir.join("table.json"), &table(&ordered))?;
    Ok(ordered)
}

/// Scores one point as trial `index` of a search seeded like `config` would be.
fn score(point: &Point, index: u64, config: &LandscapeConfig, evaluator: &dyn TrialEvaluator) -> Result<Row, String> {
    let seed = crate::runner::trial_seed(config.seed, index);
    let (arch, choices) = (point.arch.clone(), point.choices.clone());
    let spec = TrialSpec { id: index, arch, choices, seed, threads: config.threads, epochs: None };
    let clock = Instant::now();
    let e = evaluator.evaluate(&spec).and_then(|e| e.check()).map_err(|e| format!("scoring {}: {e}", point.code))?;
    Ok(Row {
        code: point.code.clone(),
        index,
        score: e.score,
        latency_ms: e.latency_ms,
        params: e.params,
        macs: e.macs,
        wall_seconds: clock.elapsed().as_secs_f64(),
        details: e.details,
    })
}

/// The rows as a truth file (`fidelity::Truth`'s format): per code the score as a percentage,
/// params, flops (MACs, as NAS-Bench-Macro counts them), the latency and the evaluator's
/// numeric extras.
pub fn table(rows: &[Row]) -> BTreeMap<&str, Map<String, Value>> {
    let entry = |r: &Row| {
        let mut e = Map::new();
        e.insert(SCORE_FIELD.into(), (100.0 * r.score).into());
        e.insert("params".into(), r.params.into());
        e.insert("flops".into(), r.macs.into());
        e.insert("latency_ms".into(), r.latency_ms.into());
        e.extend(r.details.iter().filter(|(_, v)| v.is_number()).map(|(k, v)| (k.clone(), v.clone())));
        e
    };
    rows.iter().map(|r| (r.code.as_str(), entry(r))).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use evaluator::latency::{LatencyService, LatencySetting};

    use super::*;
    use crate::evaluate::{SurrogateEvaluator, TableEvaluator};

    fn macro_space() -> SearchSpace {
        SearchSpace::from_spec(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json")).unwrap()
    }

    /// NAS-Bench-Macro with only its last two layers searched: 9 points, whose names give no
    /// code (their ids have 2 digits), so codes come from the networks, and two points build one.
    fn two_layer_space() -> SearchSpace {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json"))
                .unwrap();
        let mut json: Value = serde_json::from_str(&text).unwrap();
        for row in json["rows"].as_array_mut().unwrap().iter_mut().take(6) {
            row["layer"] = serde_json::json!(["identity"]);
        }
        SearchSpace::parse(json.to_string().as_bytes(), "two.json").unwrap()
    }

    fn config() -> LandscapeConfig {
        LandscapeConfig {
            format: LANDSCAPE_FORMAT.into(),
            space: "macro.json".into(),
            evaluator: EvaluatorKind::Surrogate,
            seed: 7,
            data: "default".into(),
            data_fingerprint: "none".into(),
            proxy: ProxySettings::default(),
            threads: 1,
        }
    }

    /// The surrogate, counting its evaluations.
    struct Counting(AtomicUsize);

    impl Counting {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl TrialEvaluator for Counting {
        fn evaluate(&self, trial: &TrialSpec) -> Result<crate::evaluate::Evaluation, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            SurrogateEvaluator.evaluate(trial)
        }
    }

    #[test]
    fn every_code_of_the_space_is_a_point_in_code_order_and_a_space_too_large_or_with_twins_is_refused() {
        let points = points(&macro_space(), "macro.json").unwrap();
        assert_eq!(points.len(), 6561);
        let codes: Vec<&str> = points.iter().take(4).map(|p| p.code.as_str()).collect();
        assert_eq!(codes, ["00000000", "00000001", "00000002", "00000010"]);
        assert_eq!(points[6560].code, "22222222");
        let error = super::points(&SearchSpace::default_space(), "default").unwrap_err();
        assert!(error.starts_with("--space default: about 10^") && error.contains("too many"), "{error}");
        let error = super::points(&two_layer_space(), "two.json").unwrap_err();
        assert!(error.contains("are both NAS-Bench-Macro code 00000010"), "{error}");
    }

    #[test]
    fn the_table_reads_back_through_the_table_evaluator_and_a_resume_skips_finished_codes() {
        let dir = tempfile::tempdir().unwrap();
        let points = &points(&macro_space(), "macro.json").unwrap()[..9];
        let counting = Counting(AtomicUsize::new(0));
        let first = run(&config(), points, &counting, dir.path(), &mut |new| new == 4, &mut |_| {}).unwrap();
        assert_eq!((first.len(), counting.count()), (4, 4));
        let rows = run(&config(), points, &counting, dir.path(), &mut |_| false, &mut |_| {}).unwrap();
        assert_eq!((rows.len(), counting.count()), (9, 9), "the resume scored only the 5 left");
        assert_eq!(&rows[..4], &first[..], "finished rows are kept as they were");
        let file = dir.path().join("table.json");
        let service = LatencyService::new(PathBuf::from("/no/such/program"), vec![]);
        let table =
            TableEvaluator::new(file.to_str().unwrap(), SCORE_FIELD, LatencySetting::default(), service).unwrap();
        for (row, point) in rows.iter().zip(points) {
            assert!((table.accuracy(&point.arch).unwrap() - row.score).abs() < 1e-12, "{}", row.code);
        }
        let mut other = config();
        other.seed = 8;
        let error = run(&other, points, &counting, dir.path(), &mut |_| false, &mut |_| {}).unwrap_err();
        assert!(error.contains("seed: this folder was run with 7, not 8"), "{error}");
    }
}
