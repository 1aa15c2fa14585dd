//! Real data for tests and benchmarks, found in the shared folder beside the workspace and never
//! committed. Where it is absent the helpers report it through [`crate::require`]: a failure
//! under `CI=true`, a SKIPPED line and `None` elsewhere.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::read::GzDecoder;

use crate::require;

/// `$MIXNAS_SHARED`, else `shared/` beside the workspace (`<workspace>/../shared`).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("MIXNAS_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared"),
    }
}

/// `<workspace>/target/testdata/`: data the tests unpack or that `bench/` scripts make, never
/// committed.
pub fn testdata_dir() -> PathBuf {
    workspace_root().join("target/testdata")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `<shared>/<relative>` (a file or a folder); where it is absent, see [`crate::require`].
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    require::found(existing(shared_dir().join(relative)))
}

/// timm's reference weights and logits (`<shared>/fixtures/timm/`: `NAME.weights.safetensors`,
/// `NAME.io.safetensors`); where they are absent, see [`crate::require`].
pub fn timm_fixtures() -> Option<PathBuf> {
    shared_path("fixtures/timm")
}

/// All of CIFAR-10 as JPEG folders (`train/<class>/*.jpg`, `test/<class>/*.jpg`), extracted
/// once from `<shared>/datasets/cifar10-jpg.tar.gz` into `<workspace>/target/testdata/`.
/// Where the archive is absent, see [`crate::require`].
///
/// # Panics
/// If the archive exists but cannot be extracted: a broken fixture must fail, not skip.
pub fn cifar10_jpg() -> Option<PathBuf> {
    let archive = shared_dir().join("datasets/cifar10-jpg.tar.gz");
    require::found(existing(archive).map(|archive| extracted(&archive, "cifar10-jpg")))
}

/// `path`, or the line saying it is missing and how to get it.
fn existing(path: PathBuf) -> Result<PathBuf, String> {
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "test data {} is missing (put the shared folder beside the workspace or set MIXNAS_SHARED to it)",
            path.display()
        ))
    }
}

/// `archive` unpacked into `target/testdata/<name>/`. Unpacking goes to a private temporary
/// directory that is renamed into place, so a reader never sees a half-written tree: threads of
/// this process wait on a lock, other processes lose the rename race and use the winner's copy.
fn extracted(archive: &Path, name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let root = testdata_dir();
    let dest = root.join(name);
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if dest.is_dir() {
        return dest;
    }
    let fail = |what: &str, e: std::io::Error| -> ! { panic!("{}: {what}: {e}", archive.display()) };
    std::fs::create_dir_all(&root).unwrap_or_else(|e| fail("cannot create target/testdata", e));
    let tmp = root.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let file = std::fs::File::open(archive).unwrap_or_else(|e| fail("cannot open", e));
    tar::Archive::new(GzDecoder::new(file)).unpack(&tmp).unwrap_or_else(|e| fail("cannot extract", e));
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another process renamed its copy first; ours is redundant.
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(dest.is_dir(), "{}: extracted but could not move to {}", archive.display(), dest.display());
    }
    dest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_named_with_how_to_get_it() {
        let why = existing(shared_dir().join("no/such/fixture.safetensors")).unwrap_err();
        assert!(why.contains("no/such/fixture.safetensors is missing") && why.contains("MIXNAS_SHARED"), "{why}");
        assert_eq!(existing(workspace_root().join("Cargo.toml")), Ok(workspace_root().join("Cargo.toml")));
    }

    #[test]
    fn shared_dir_sits_beside_the_workspace_unless_overridden() {
        if std::env::var_os("MIXNAS_SHARED").is_none() {
            assert_eq!(shared_dir(), workspace_root().join("../shared"));
        }
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
