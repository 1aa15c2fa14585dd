//! A ground-truth file in NAS-Bench-Macro's format, `{code: {field: number, ...}}`: each network's
//! code mapped to what full training measured (`mean_acc`, `std`, `test_acc`) and what it costs
//! (`params`, `flops`). Every way a file can be wrong is one line naming the file, the fault and
//! what is allowed, because the file is typed by hand or converted from elsewhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use evaluator::rng::SplitMix64;

/// The field read by default: the mean accuracy over the benchmark's three trainings.
pub const DEFAULT_FIELD: &str = "mean_acc";

pub use space::family::CodeRule;

/// NAS-Bench-Macro's code rule (8 digits of 0, 1, 2).
pub const NAS_BENCH_MACRO: CodeRule = space::family::NAS_BENCH_MACRO_CODES;

/// One network's truth: the chosen field, and its costs where the file gives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub value: f64,
    pub params: Option<f64>,
    pub flops: Option<f64>,
}

/// A loaded truth file: entries by code, in code order.
#[derive(Clone, Debug)]
pub struct Truth {
    source: String,
    field: String,
    rule: CodeRule,
    entries: BTreeMap<String, Entry>,
}

impl Truth {
    /// Reads `path`, taking `field` (e.g. [`DEFAULT_FIELD`]) from every entry, whose code must
    /// follow `rule`. The error is one line.
    pub fn load(path: impl AsRef<Path>, field: &str, rule: CodeRule) -> Result<Truth, String> {
        let source = path.as_ref().display().to_string();
        let text = std::fs::read_to_string(path.as_ref()).map_err(|e| format!("{source}: cannot read: {e}"))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| format!("{source}: not JSON: {e}"))?;
        let Value::Object(codes) = json else {
            return Err(format!("{source}: the top level is {}; expected an object {SHAPE}", kind(&json)));
        };
        if codes.is_empty() {
            return Err(format!("{source}: holds no entries; expected an object {SHAPE}"));
        }
        let mut entries = BTreeMap::new();
        for (code, value) in &codes {
            let entry = rule.check(code).and_then(|()| parse_entry(code, value, field));
            entries.insert(code.clone(), entry.map_err(|e| format!("{source}: {e}"))?);
        }
        Ok(Truth { source, field: field.to_string(), rule, entries })
    }

    /// The entry of `code`, or one line saying why there is none.
    pub fn entry(&self, code: &str) -> Result<&Entry, String> {
        self.rule.check(code).map_err(|e| format!("{}: {e}", self.source))?;
        self.entries.get(code).ok_or_else(|| {
            let (held, allowed) = (self.entries.len(), self.rule.count());
            format!("{}: no entry for code {code:?} (it holds {held} of the {allowed} possible codes)", self.source)
        })
    }

    /// The chosen field's value for `code`.
    pub fn get(&self, code: &str) -> Result<f64, String> {
        self.entry(code).map(|e| e.value)
    }

    /// `n` distinct codes spread over the FLOPs range, in rising FLOPs: the entries sorted by
    /// (flops, code) are cut into `n` equal strata, and one code is drawn from each with `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<String>, String> {
        if n > self.entries.len() {
            return Err(format!("{}: cannot sample {n} codes; it holds {}", self.source, self.entries.len()));
        }
        let mut by_flops = Vec::with_capacity(self.entries.len());
        for (code, entry) in &self.entries {
            let flops = entry.flops.ok_or_else(|| {
                format!("{}: cannot sample over FLOPs: entry {code:?} has no numeric field \"flops\"", self.source)
            })?;
            by_flops.push((flops, code));
        }
        by_flops.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        let mut rng = SplitMix64::scrambled(seed);
        let stratum_start = |i: usize| i * by_flops.len() / n;
        let picks = (0..n).map(|i| stratum_start(i) + rng.below_by_modulo(stratum_start(i + 1) - stratum_start(i)));
        Ok(picks.map(|at| by_flops[at].1.clone()).collect())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in code order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(code, entry)| (code.as_str(), entry))
    }

    /// The field the values are of.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The file the truth was read from, as messages name it.
    pub fn source(&self) -> &str {
        &self.source
    }
}

const SHAPE: &str = "{code: {field: number, ...}, ...}";

/// One entry's object: the chosen field (required) and params and flops (optional), numbers all.
fn parse_entry(code: &str, value: &Value, field: &str) -> Result<Entry, String> {
    let Value::Object(fields) = value else {
        return Err(format!("entry {code:?} is {}; expected an object {{field: number, ...}}", kind(value)));
    };
    let Some(chosen) = number(fields, code, field)? else {
        return Err(format!("entry {code:?} has no field {field:?}; {}", numeric_fields(fields)));
    };
    Ok(Entry { value: chosen, params: number(fields, code, "params")?, flops: number(fields, code, "flops")? })
}

/// `fields[name]` as a number, `None` where absent, an error where it is something else.
fn number(fields: &Map<String, Value>, code: &str, name: &str) -> Result<Option<f64>, String> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!("entry {code:?} field {name:?} is {}; expected a number", kind(other))),
    }
}

fn numeric_fields(fields: &Map<String, Value>) -> String {
    let names: Vec<&str> = fields.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k.as_str()).collect();
    match names.is_empty() {
        true => "it has no numeric fields".to_string(),
        false => format!("its numeric fields are {}", names.join(", ")),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::fidelity::stats::kendall_tau_b;

    /// The benchmark's dev half, or `None` after a SKIPPED line.
    fn dev_file() -> Option<PathBuf> {
        testkit::shared::shared_path("benchmarks/nas-bench-macro/cifar10-dev.json")
    }

    /// The error of loading `text` as a truth file, with the temporary path replaced by `FILE`.
    fn load_error(text: &str, field: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.json");
        std::fs::write(&path, text).unwrap();
        let error = Truth::load(&path, field, NAS_BENCH_MACRO).unwrap_err();
        assert!(!error.contains('\n'), "not one line: {error}");
        error.replace(&path.display().to_string(), "FILE")
    }

    fn small_truth(flops: &[u32]) -> Truth {
        let entries: Vec<String> =
            (0..flops.len()).map(|i| format!(r#""{i:08}": {{"mean_acc": {i}, "flops": {}}}"#, flops[i])).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.json");
        std::fs::write(&path, format!("{{{}}}", entries.join(","))).unwrap();
        Truth::load(&path, DEFAULT_FIELD, CodeRule { length: 8, digits: "0123456789" }).unwrap()
    }

    #[test]
    fn the_dev_file_loads_whole() {
        let Some(path) = dev_file() else { return };
        let truth = Truth::load(&path, DEFAULT_FIELD, NAS_BENCH_MACRO).unwrap();
        assert_eq!(truth.len(), 3281);
        let first = truth.entry("00000000").unwrap();
        assert_eq!((first.params, first.flops), (Some(387882.0), Some(7713280.0)));
        assert_eq!(truth.get("00000000").unwrap(), 45.36333211263021);
        let std = Truth::load(&path, "std", NAS_BENCH_MACRO).unwrap();
        assert_eq!(std.get("00000000").unwrap(), 0.054364862390541085);
        let missing = truth.get("00000001").unwrap_err();
        assert_eq!(
            missing,
            format!("{}: no entry for code \"00000001\" (it holds 3281 of the 6561 possible codes)", path.display())
        );
    }

    /// The loader and tau-b together on real data: the FLOPs and params baselines over the whole
    /// dev half, as a plain O(n^2) count in Python gives them (0.507 is below the README's
    /// 0.55-0.66, which is quoted for samples of 30-200 networks of the full benchmark).
    #[test]
    fn flops_and_params_baselines_over_the_dev_file() {
        let Some(path) = dev_file() else { return };
        let truth = Truth::load(&path, DEFAULT_FIELD, NAS_BENCH_MACRO).unwrap();
        let column = |f: fn(&Entry) -> f64| truth.iter().map(|(_, e)| f(e)).collect::<Vec<f64>>();
        let accuracy = column(|e| e.value);
        let by_flops = kendall_tau_b(&column(|e| e.flops.unwrap()), &accuracy);
        let by_params = kendall_tau_b(&column(|e| e.params.unwrap()), &accuracy);
        assert!((by_flops - 0.5066679812916243).abs() < 1e-12, "{by_flops}");
        assert!((by_params - 0.2153671587006952).abs() < 1e-12, "{by_params}");
    }

    #[test]
    fn a_dev_sample_is_seeded_distinct_and_spans_the_flops() {
        let Some(path) = dev_file() else { return };
        let truth = Truth::load(&path, DEFAULT_FIELD, NAS_BENCH_MACRO).unwrap();
        let sample = truth.sample(30, 4).unwrap();
        assert_eq!(sample, truth.sample(30, 4).unwrap());
        assert_ne!(sample, truth.sample(30, 5).unwrap());
        assert_eq!(sample.iter().collect::<std::collections::BTreeSet<_>>().len(), 30);
        let mut all: Vec<f64> = truth.iter().map(|(_, e)| e.flops.unwrap()).collect();
        all.sort_by(f64::total_cmp);
        let flops: Vec<f64> = sample.iter().map(|c| truth.entry(c).unwrap().flops.unwrap()).collect();
        assert!(flops.windows(2).all(|w| w[0] <= w[1]), "not in rising FLOPs: {flops:?}");
        assert!(flops[0] <= all[all.len() / 10] && flops[29] >= all[all.len() * 9 / 10], "{flops:?}");
    }

    #[test]
    fn sampling_takes_one_code_per_flops_stratum() {
        let truth = small_truth(&[50, 10, 40, 20, 30, 60]);
        // Sorted by flops: codes 1, 3, 4, 2, 0, 5; three strata of two.
        let sample = truth.sample(3, 9).unwrap();
        let strata = [["00000001", "00000003"], ["00000004", "00000002"], ["00000000", "00000005"]];
        for (code, stratum) in sample.iter().zip(strata) {
            assert!(stratum.contains(&code.as_str()), "{sample:?}");
        }
        assert_eq!(
            truth.sample(6, 1).unwrap(),
            ["00000001", "00000003", "00000004", "00000002", "00000000", "00000005"]
        );
        assert!(truth.sample(7, 1).unwrap_err().ends_with(": cannot sample 7 codes; it holds 6"));
    }

    #[test]
    fn sampling_needs_flops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, r#"{"00000000": {"mean_acc": 1}}"#).unwrap();
        let error = Truth::load(&path, DEFAULT_FIELD, NAS_BENCH_MACRO).unwrap().sample(1, 0).unwrap_err();
        assert!(error.ends_with(r#": cannot sample over FLOPs: entry "00000000" has no numeric field "flops""#));
    }

    #[test]
    fn each_bad_file_is_one_line_naming_the_fault() {
        let cases = [
            ("{\"00000000\": ", DEFAULT_FIELD, "FILE: not JSON: EOF while parsing a value at line 1 column 13"),
            (
                "[1, 2]",
                DEFAULT_FIELD,
                "FILE: the top level is an array; expected an object {code: {field: number, ...}, ...}",
            ),
            ("{}", DEFAULT_FIELD, "FILE: holds no entries; expected an object {code: {field: number, ...}, ...}"),
            (
                r#"{"00000000": {"mean_acc": 1, "flops": 2, "note": "x"}}"#,
                "acc",
                r#"FILE: entry "00000000" has no field "acc"; its numeric fields are flops, mean_acc"#,
            ),
            (
                r#"{"00000000": {"std": "x"}}"#,
                "acc",
                r#"FILE: entry "00000000" has no field "acc"; it has no numeric fields"#,
            ),
            (
                r#"{"00000000": {"mean_acc": "45.3"}}"#,
                DEFAULT_FIELD,
                r#"FILE: entry "00000000" field "mean_acc" is a string; expected a number"#,
            ),
            (
                r#"{"00000000": {"mean_acc": 1, "params": null}}"#,
                DEFAULT_FIELD,
                r#"FILE: entry "00000000" field "params" is null; expected a number"#,
            ),
            (
                r#"{"00000000": [1]}"#,
                DEFAULT_FIELD,
                r#"FILE: entry "00000000" is an array; expected an object {field: number, ...}"#,
            ),
            (
                r#"{"00000000": {"mean_acc": 1}, "0201x100": {"mean_acc": 2}}"#,
                DEFAULT_FIELD,
                r#"FILE: code "0201x100" at position 5: expected one of 0, 1, 2"#,
            ),
            (
                r#"{"00000000": {"mean_acc": 1}, "0201100": {"mean_acc": 2}}"#,
                DEFAULT_FIELD,
                r#"FILE: code "0201100" has 7 digits; expected 8 of 0, 1, 2"#,
            ),
        ];
        for (text, field, expected) in cases {
            assert_eq!(load_error(text, field), expected, "for {text}");
        }
    }

    #[test]
    fn an_unreadable_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        let error = Truth::load(&path, DEFAULT_FIELD, NAS_BENCH_MACRO).unwrap_err();
        assert!(error.starts_with(&format!("{}: cannot read: ", path.display())), "{error}");
        assert!(!error.contains('\n'));
    }

    #[test]
    fn a_bad_code_asked_for_is_one_line() {
        let truth = small_truth(&[1, 2]);
        let source = truth.source().to_string();
        assert_eq!(truth.get("00000001").unwrap(), 1.0);
        assert_eq!(
            truth.get("0000001").unwrap_err(),
            format!("{source}: code \"0000001\" has 7 digits; expected 8 of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9")
        );
        assert_eq!(
            truth.get("0000000a").unwrap_err(),
            format!("{source}: code \"0000000a\" at position 8: expected one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9")
        );
        let unknown = truth.get("00000007").unwrap_err();
        assert_eq!(
            unknown,
            format!("{source}: no entry for code \"00000007\" (it holds 2 of the 100000000 possible codes)")
        );
    }
}
