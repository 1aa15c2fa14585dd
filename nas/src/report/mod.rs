//! `nas report`: a self-contained HTML page (and the plots as SVG files) for a search run
//! folder or a `nas train` folder, recognised by the files in it.

mod archview;
mod choices;
mod fidelity;
mod html;
mod pages;
pub mod run;
pub(crate) mod svg;
mod training;
mod trials;

use std::path::Path;

pub use run::RunFolder;

/// What a folder holds, judged by its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderKind {
    /// `nas search`: config.json and trials.jsonl.
    Search,
    /// `nas train`: checkpoint.json and metrics.json.
    Training,
    /// `nas fidelity`: fidelity.json and results.json.
    Fidelity,
}

pub fn detect(dir: &Path) -> Result<FolderKind, String> {
    let has = |name: &str| dir.join(name).is_file();
    if !dir.is_dir() {
        return Err(format!(
            "{}: not a folder (hint: give a `nas search` or `nas train` output folder)",
            dir.display()
        ));
    }
    if has("config.json") && has("trials.jsonl") {
        Ok(FolderKind::Search)
    } else if has("config.json") && has("started.jsonl") {
        Err(format!("{}: a search run with no finished trial yet (hint: try again later)", dir.display()))
    } else if has("checkpoint.json") && has("metrics.json") {
        Ok(FolderKind::Training)
    } else if has("fidelity.json") && has("results.json") {
        Ok(FolderKind::Fidelity)
    } else {
        Err(format!(
            "{}: not a search run (config.json and trials.jsonl), a training run (checkpoint.json and metrics.json) or a fidelity run (fidelity.json and results.json)",
            dir.display()
        ))
    }
}

/// A rendered report: the page and each plot as a standalone SVG document, by file name.
pub struct Report {
    pub html: String,
    pub plots: Vec<(String, String)>,
}

pub fn build(dir: &Path) -> Result<Report, String> {
    match detect(dir)? {
        FolderKind::Search => pages::search(&RunFolder::load(dir)?),
        FolderKind::Training => pages::training(&training::TrainFolder::load(dir)?),
        FolderKind::Fidelity => fidelity::page(dir, &fidelity::load(dir)?),
    }
}

/// 42.3 -> "42.3 s", 754 -> "12 min 34 s", 7300 -> "2 h 01 min".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    match s {
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64),
        s => format!("{} h {:02} min", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64),
    }
}
