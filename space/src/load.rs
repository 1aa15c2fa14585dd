//! Reading architectures: from a file or a preset name, with errors that name the file, the
//! block, the field and what is allowed, in one line.

use std::fmt;
use std::path::Path;

use crate::arch::{Arch, ARCH_FORMAT};
use crate::{family, presets, validate};

/// Why an architecture could not be read. Displays as one line:
/// `FILE: blocks[3].kernels: kernel size 4 is not allowed; use odd sizes from 3 to 31`.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchError {
    /// The file (or preset name) being read.
    pub source: String,
    /// JSON path of the offending field (`blocks[3].kernels`), empty for the whole document.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ArchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field.is_empty() {
            true => write!(f, "{}: {}", self.source, self.message),
            false => write!(f, "{}: {}: {}", self.source, self.field, self.message),
        }
    }
}

impl std::error::Error for ArchError {}

/// Loads `spec`: a preset name (`mixnet-s`), a timm model name (`tf_mixnet_s`: the preset with
/// timm's padding and BN eps for it), a family member (`nas-bench-macro:02012100`) or a path
/// to an architecture JSON file.
pub fn load_arch(spec: &str) -> Result<Arch, ArchError> {
    if let Some(member) = family::by_spec(spec) {
        return member.map_err(|message| ArchError { source: spec.to_string(), field: String::new(), message });
    }
    // timm's model names (mixnet_s, tf_mixnet_m, ...) too, so that timm weights given to
    // `nas train --init` get their own padding and BN eps.
    if let Some(arch) = presets::by_name(spec).or_else(|| presets::timm_model(spec)) {
        return Ok(arch);
    }
    let path = Path::new(spec);
    let text = std::fs::read(path).map_err(|e| {
        let hint = match path.extension().is_none() && !spec.contains('/') {
            true => format!(
                " (and it is not a preset: {}, or {}:CODE)",
                presets::PRESETS.join(", "),
                family::NAS_BENCH_MACRO
            ),
            false => String::new(),
        };
        ArchError { source: spec.to_string(), field: String::new(), message: format!("{e}{hint}") }
    })?;
    parse_arch(&text, spec)
}

/// Parses and validates an architecture document; `source` names it in errors.
pub fn parse_arch(bytes: &[u8], source: &str) -> Result<Arch, ArchError> {
    let err = |field: String, message: String| ArchError { source: source.to_string(), field, message };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| err(String::new(), format!("not valid JSON: {e}")))?;
    match value.get("format").map(|f| f.as_str()) {
        None => return Err(err(String::new(), format!("missing field `format` (expected \"{ARCH_FORMAT}\")"))),
        Some(Some(ARCH_FORMAT)) => {}
        Some(other) => {
            let got = other.map_or_else(|| value["format"].to_string(), |s| format!("\"{s}\""));
            return Err(err(
                "format".into(),
                format!("unknown format version {got}; this mixnas reads \"{ARCH_FORMAT}\""),
            ));
        }
    }
    let arch: Arch = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        err(if field == "." { String::new() } else { field }, e.into_inner().to_string())
    })?;
    validate::validate(&arch).map_err(|(field, message)| err(field, message))?;
    Ok(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::to_value(presets::mixnet_s()).unwrap();
        edit(&mut v);
        parse_arch(v.to_string().as_bytes(), "x.json").unwrap_err().to_string()
    }

    #[test]
    fn every_preset_round_trips_through_json_exactly() {
        for name in presets::PRESETS {
            let arch = presets::by_name(name).unwrap();
            let text = arch.to_json();
            let back = parse_arch(text.as_bytes(), name).unwrap();
            assert_eq!(back, arch);
            assert_eq!(back.to_json(), text);
        }
    }

    #[test]
    fn hand_broken_architectures_name_file_block_and_field() {
        let e = broken(|v| v["blocks"][3]["kernels"] = serde_json::json!([3, 4]));
        assert_eq!(e, "x.json: blocks[3].kernels: kernel size 4 is not allowed; use odd sizes from 3 to 31");
        let e = broken(|v| v["blocks"][2]["kernels"] = serde_json::json!([3, 5, 7, 9, 11, 13, 15]));
        assert!(e.starts_with("x.json: blocks[2].kernels: 7 kernel groups"), "{e}");
        let e = broken(|v| v["blocks"][5]["se"] = serde_json::json!(1.5));
        assert!(e.starts_with("x.json: blocks[5].se: 1.5 is out of range"), "{e}");
        let e = broken(|v| v["blocks"][7]["in"] = serde_json::json!(96));
        assert!(e.starts_with("x.json: blocks[7].in: 96 does not chain"), "{e}");
        let e = broken(|v| v["blocks"][1]["stride"] = serde_json::json!(3));
        assert!(e.starts_with("x.json: blocks[1].stride:"), "{e}");
        let e = broken(|v| v["blocks"][0]["kernel_size"] = serde_json::json!(3));
        assert!(e.starts_with("x.json: blocks[0].kernel_size: unknown field `kernel_size`, expected one of"), "{e}");
        let e = broken(|v| v["blocks"][0].as_object_mut().unwrap().remove("act").map(|_| ()).unwrap());
        assert!(e.starts_with("x.json: blocks[0]: missing field `act`"), "{e}");
        let e = broken(|v| v["blocks"][0]["expand"] = serde_json::json!("six"));
        assert!(e.starts_with("x.json: blocks[0].expand: invalid type"), "{e}");
        let e = broken(|v| v["format"] = serde_json::json!("mixnas.arch/9"));
        assert!(e.contains("unknown format version \"mixnas.arch/9\""), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn presets_load_by_name_and_files_by_path() {
        assert_eq!(load_arch("mixnet-m").unwrap(), presets::mixnet_m());
        let tf = load_arch("tf_mixnet_s").unwrap();
        assert_eq!(
            (tf.padding, tf.bn.eps, tf.name.as_deref()),
            (crate::arch::Padding::TfSame, 1e-3, Some("tf-mixnet-s"))
        );
        let e = load_arch("no-such-net").unwrap_err().to_string();
        assert!(e.contains("not a preset"), "{e}");
    }

    /// A `best.json` written before scores were named calls its score `accuracy`.
    #[test]
    fn an_old_provenance_accuracy_reads_as_its_score() {
        let mut v = serde_json::to_value(presets::mixnet_s()).unwrap();
        v["provenance"] =
            serde_json::json!({"run": "r", "trial": 4, "reward": 0.5, "accuracy": 0.61, "latency_ms": 9.0});
        let p = parse_arch(v.to_string().as_bytes(), "best.json").unwrap().provenance.unwrap();
        assert_eq!((p.score, p.metric, p.trial), (Some(0.61), None, Some(4)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_arch(&bytes, "fuzz.json");
        }

        #[test]
        fn mutated_presets_never_panic(pos in 0usize..4000, byte in proptest::num::u8::ANY) {
            let mut text = presets::mixnet_s().to_json().into_bytes();
            let i = pos % text.len();
            text[i] = byte;
            let _ = parse_arch(&text, "fuzz.json");
        }
    }
}
