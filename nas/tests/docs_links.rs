//! The README and docs/ point only at things that exist: every relative link, and every
//! `results/...` path they name as the source of a figure.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("nas/ sits in the workspace").to_path_buf()
}

/// README.md and every Markdown file under docs/.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("README.md")];
    let dir = std::fs::read_dir(root.join("docs")).expect("docs/ exists");
    docs.extend(dir.map(|e| e.expect("docs/ entry").path()).filter(|p| p.extension().is_some_and(|e| e == "md")));
    docs.sort();
    docs
}

/// Targets of `[text](target)` that are paths, not web addresses or anchors, without their anchor.
fn link_targets(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')')?];
            let target = target.split('#').next().unwrap_or_default();
            let external = target.contains("://") || target.starts_with("mailto:");
            (!target.is_empty() && !external).then_some(target)
        })
        .collect()
}

/// `results/...` paths named in prose or code spans, from the repository root. Placeholders
/// (`results/<timestamp>/`) are skipped; a `*` must match something.
fn result_paths(text: &str) -> Vec<&str> {
    let starts = text.match_indices("results/").map(|(i, _)| i);
    starts
        .filter(|&i| i == 0 || matches!(text.as_bytes()[i - 1], b' ' | b'\n' | b'`' | b'(' | b'[' | b'"'))
        .map(|i| {
            let rest = &text[i..];
            let end = rest.find(|c: char| c.is_whitespace() || "`)]\",;:".contains(c)).unwrap_or(rest.len());
            rest[..end].trim_end_matches('.')
        })
        .filter(|p| !p.contains('<') && p.len() > "results/".len())
        .collect()
}

/// Whether `pattern` (a path whose components may hold one `*`) names at least one existing path.
fn exists(base: &Path, pattern: &str) -> bool {
    let mut candidates = vec![base.to_path_buf()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        candidates = candidates
            .iter()
            .flat_map(|dir| match part.split_once('*') {
                None => vec![dir.join(part)],
                Some((head, tail)) => std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .filter(|n| n.len() >= head.len() + tail.len() && n.starts_with(head) && n.ends_with(tail))
                    .map(|n| dir.join(n))
                    .collect(),
            })
            .filter(|p| p.exists())
            .collect();
    }
    !candidates.is_empty()
}

#[test]
fn every_link_and_results_path_in_the_docs_exists() {
    let root = repo_root();
    let mut missing = Vec::new();
    for doc in documents(&root) {
        let text = std::fs::read_to_string(&doc).expect("readable document");
        let dir = doc.parent().expect("a document has a folder");
        let name = doc.strip_prefix(&root).unwrap_or(&doc).display().to_string();
        for target in link_targets(&text) {
            if !exists(dir, target) {
                missing.push(format!("{name}: link {target}"));
            }
        }
        for path in result_paths(&text) {
            if !exists(&root, path) {
                missing.push(format!("{name}: {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "named in the docs but not in the repository:\n{}", missing.join("\n"));
}

#[test]
fn the_scanners_find_links_and_paths_and_reject_what_is_absent() {
    let text = "see [a](docs/x.md#part), [web](https://e.org) and `results/bench/x.txt`; (results/a/),\n\
                not ../results/b or `results/<timestamp>/`";
    assert_eq!(link_targets(text), ["docs/x.md"]);
    assert_eq!(result_paths(text), ["results/bench/x.txt", "results/a/"]);
    let root = repo_root();
    assert!(exists(&root, "docs/architecture.md"));
    assert!(exists(&root, "results/fidelity/zero-*-32px-n100/"));
    assert!(!exists(&root, "results/fidelity/no-such-run/"));
    assert!(!exists(&root, "results/fidelity/zero-*-no-such/"));
}
