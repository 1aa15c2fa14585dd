//! `configs/` holds readable copies of what the code builds: the presets as architecture files
//! and the default search space. These tests keep the copies from drifting.

use std::path::{Path, PathBuf};

use space::{presets, Arch, SearchSpace};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

#[test]
fn preset_files_are_the_presets_as_written() {
    // MIXNAS_BLESS=1 rewrites the files from the tables (after a deliberate change).
    let bless = std::env::var_os("MIXNAS_BLESS").is_some();
    for name in presets::PRESETS {
        let path = configs().join(format!("{name}.json"));
        let built = presets::by_name(name).unwrap();
        if bless {
            std::fs::write(&path, built.to_json() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("configs/{name}.json: {e}"));
        let from_file: Arch = serde_json::from_str(&text).unwrap();
        assert_eq!(from_file, built, "configs/{name}.json differs from presets.rs");
        assert_eq!(text, built.to_json() + "\n", "configs/{name}.json is not as `to_json` writes it");
    }
}

#[test]
fn the_space_file_is_the_default_space() {
    let loaded = SearchSpace::load(configs().join("space-mixnet.json")).unwrap();
    let default = SearchSpace::default_space();
    assert_eq!(loaded.name, default.name);
    assert_eq!((&loaded.decisions, loaded.rows(), &loaded.base), (&default.decisions, default.rows(), &default.base));
}

#[test]
fn a_space_spec_is_default_or_a_path() {
    let path = configs().join("space-mixnet.json");
    let by_path = SearchSpace::from_spec(path.to_str().unwrap()).unwrap();
    assert_eq!(by_path.source, path.display().to_string());
    assert_eq!(by_path.rows(), SearchSpace::from_spec("default").unwrap().rows());
    assert_eq!(SearchSpace::from_spec("default").unwrap().source, SearchSpace::default_space().source);
    let e = SearchSpace::from_spec("/no/such/space.json").unwrap_err().to_string();
    assert!(e.starts_with("/no/such/space.json: "), "{e}");
}
