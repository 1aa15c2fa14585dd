//! Real data for tests and benchmarks, found in the shared folder beside the workspace and never
//! committed. Where it is absent the helpers say so loudly and return `None`, so tests skip
//! instead of failing on machines without it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::read::GzDecoder;

/// `$MIXNAS_SHARED`, else `shared/` beside the workspace (`<workspace>/../shared`).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("MIXNAS_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// All of CIFAR-10 as JPEG folders (`train/<class>/*.jpg`, `test/<class>/*.jpg`), extracted
/// once from `<shared>/datasets/cifar10-jpg.tar.gz` into `<workspace>/target/testdata/`.
/// `None`, after printing a SKIPPED line, where the archive is absent.
///
/// # Panics
/// If the archive exists but cannot be extracted: a broken fixture must fail, not skip.
pub fn cifar10_jpg() -> Option<PathBuf> {
    let archive = shared_dir().join("datasets/cifar10-jpg.tar.gz");
    extracted(&archive, "cifar10-jpg")
}

/// `archive` unpacked into `target/testdata/<name>/`. Unpacking goes to a private temporary
/// directory that is renamed into place, so a reader never sees a half-written tree: threads of
/// this process wait on a lock, other processes lose the rename race and use the winner's copy.
fn extracted(archive: &Path, name: &str) -> Option<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    if !archive.is_file() {
        eprintln!("SKIPPED: test data {} not found (set MIXNAS_SHARED to its folder)", archive.display());
        return None;
    }
    let root = workspace_root().join("target/testdata");
    let dest = root.join(name);
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if dest.is_dir() {
        return Some(dest);
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
    Some(dest)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::data::{load, DataSource, Format, LoadOptions};

    #[test]
    fn missing_archive_skips() {
        assert_eq!(extracted(Path::new("/nonexistent/archive.tar.gz"), "never"), None);
    }

    #[test]
    fn real_cifar10_jpg_loads_a_balanced_subset() {
        let Some(dir) = cifar10_jpg() else { return };
        let opts = LoadOptions { train_per_class: Some(100), test_per_class: Some(100), seed: 0, image_size: None };
        let start = Instant::now();
        let data = load(&DataSource::Path(dir), &opts).unwrap();
        eprintln!("cifar10-jpg: 1,000 train + 1,000 test JPEGs decoded in {:?}", start.elapsed());
        assert_eq!(data.format, Format::ImageFolder);
        assert_eq!(data.train.classes(), crate::data::CIFAR10_CLASSES);
        assert_eq!(data.train.class_counts(), vec![100; 10]);
        assert_eq!(data.test.class_counts(), vec![100; 10]);
        assert_eq!(data.train.shape(), crate::data::Shape::new(3, 32, 32));
        let norm = crate::data::Normalize::from_dataset(&data.train);
        // CIFAR-10's red channel mean is about 0.49 (125/255); a 1,000-image subset lands near it.
        assert!((norm.mean[0] - 0.49).abs() < 0.03, "red mean {}", norm.mean[0]);
    }

    /// Load times of larger CIFAR-10 JPEG subsets (release-like test profile):
    /// `cargo test -p evaluator time_cifar10_jpg -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing only; takes seconds"]
    fn time_cifar10_jpg_loads() {
        let Some(dir) = cifar10_jpg() else { return };
        for per_class in [Some(1000), None] {
            let opts = LoadOptions { train_per_class: per_class, test_per_class: Some(0), ..Default::default() };
            let start = Instant::now();
            let data = load(&DataSource::Path(dir.clone()), &opts).unwrap();
            let threads = rayon::current_num_threads();
            eprintln!("cifar10-jpg: {} train JPEGs in {:?} ({threads} threads)", data.train.len(), start.elapsed());
        }
    }
}
