//! Crash-safe files: [`write_atomic`] and named tensors in `.safetensors`, with a loader that
//! refuses tensors whose names or shapes do not fit and names the first offender.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use candle_core::{bail, DType, Device, Error, Result, Tensor, Var};

/// A one-line error for people: unlike `bail!`, never carries a backtrace.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(Error::Msg(format!($($arg)*)))
    };
}
use safetensors::tensor::{Dtype as StDtype, TensorView};

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a torn
/// one: temp file in the same directory, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| io::Error::other(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is on disk.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Little-endian bytes and safetensors dtype of a tensor (dtypes a checkpoint can hold).
fn tensor_bytes(name: &str, t: &Tensor) -> Result<(StDtype, Vec<u8>)> {
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F32 => (StDtype::F32, flat.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => (StDtype::F64, flat.to_vec1::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::U32 => (StDtype::U32, flat.to_vec1::<u32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I64 => (StDtype::I64, flat.to_vec1::<i64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::U8 => (StDtype::U8, flat.to_vec1::<u8>()?),
        other => bail!("checkpoint: tensor `{name}` has dtype {other:?}; only f32, f64, u32, i64 and u8 are saved"),
    })
}

/// Serialises named tensors (and optional string metadata) in safetensors format.
pub fn safetensors_bytes(tensors: &[(String, Tensor)], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    let data =
        tensors.iter().map(|(n, t)| Ok((n, tensor_bytes(n, t)?, t.dims().to_vec()))).collect::<Result<Vec<_>>>()?;
    let views = data
        .iter()
        .map(|(n, (dt, bytes), dims)| Ok((n.as_str(), TensorView::new(*dt, dims.clone(), bytes).map_err(Error::wrap)?)))
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, &metadata).map_err(Error::wrap)
}

/// Saves named tensors atomically; `metadata` lands in the safetensors header.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes = safetensors_bytes(tensors, metadata)?;
    write_atomic(path, &bytes).map_err(|e| Error::Msg(e.to_string()))
}

/// Loads every tensor of a `.safetensors` file onto the CPU, with the header metadata.
pub fn load_tensors(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = fs::read(path).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::Msg(format!("{}: not a safetensors file ({e})", path.display())))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::Msg(format!("{}: {}", path.display(), first_line(&e))))?;
    Ok((tensors, meta))
}

/// candle errors carry a backtrace after the first line when `RUST_BACKTRACE` is set.
fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Checks that `found` holds exactly the `expected` names with the expected shapes; the error
/// is one line naming the first missing, misshapen or unexpected tensor.
pub fn check_shapes(expected: &[(String, Vec<usize>)], found: &HashMap<String, Tensor>) -> Result<()> {
    for (name, shape) in expected {
        match found.get(name) {
            None => refuse!("tensor `{name}` is missing (expected shape {shape:?})"),
            Some(t) if t.dims() != shape.as_slice() => {
                refuse!("tensor `{name}` has shape {:?}, expected {shape:?}", t.dims())
            }
            Some(_) => {}
        }
    }
    if found.len() != expected.len() {
        let mut extra: Vec<_> = found.keys().filter(|k| !expected.iter().any(|(n, _)| n == *k)).collect();
        extra.sort();
        if let Some(name) = extra.first() {
            refuse!("tensor `{name}` is not expected ({} unexpected in all)", extra.len())
        }
    }
    Ok(())
}

/// Loads `path` into `params` after [`check_shapes`]; nothing is written if any tensor is refused.
pub fn load_into(path: &Path, params: &[(String, Var)]) -> Result<HashMap<String, String>> {
    let (tensors, meta) = load_tensors(path)?;
    let expected: Vec<_> = params.iter().map(|(n, v)| (n.clone(), v.dims().to_vec())).collect();
    if let Err(e) = check_shapes(&expected, &tensors) {
        refuse!("{}: {e}", path.display())
    }
    for (name, var) in params {
        let t = &tensors[name];
        if t.dtype() != var.dtype() {
            refuse!("{}: tensor `{name}` has dtype {:?}, expected {:?}", path.display(), t.dtype(), var.dtype())
        }
    }
    for (name, var) in params {
        var.set(&tensors[name])?;
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("best.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new content").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new content");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["best.json"]);
        assert!(write_atomic(&dir.path().join("no/such/dir/x"), b"x").is_err());
    }

    #[test]
    fn tensors_round_trip_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let w = Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let n = Tensor::new(&[7u32], &Device::Cpu).unwrap();
        let meta = HashMap::from([("epoch".to_string(), "3".to_string())]);
        save_tensors(&path, &[("a.weight".into(), w.clone()), ("n".into(), n)], Some(meta.clone())).unwrap();
        let (got, got_meta) = load_tensors(&path).unwrap();
        assert_eq!(got_meta, meta);
        assert_eq!(got["a.weight"].to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        assert_eq!(got["n"].to_vec1::<u32>().unwrap(), [7]);
    }

    #[test]
    fn shape_mismatch_is_refused_naming_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let t = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
        save_tensors(
            &path,
            &[("stem.conv.weight".into(), t(&[16, 3, 3, 3])), ("blocks.0.bn1.weight".into(), t(&[24]))],
            None,
        )
        .unwrap();
        let var = |s: &[usize]| Var::ones(s, DType::F32, &Device::Cpu).unwrap();
        let params =
            vec![("stem.conv.weight".to_string(), var(&[16, 3, 3, 3])), ("blocks.0.bn1.weight".into(), var(&[32]))];
        let err = load_into(&path, &params).unwrap_err().to_string();
        assert!(err.contains("tensor `blocks.0.bn1.weight` has shape [24], expected [32]"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // Refused as a whole: the tensor that fitted was not written either.
        assert_eq!(params[0].1.flatten_all().unwrap().min(0).unwrap().to_scalar::<f32>().unwrap(), 1.0);

        let missing = load_into(&path, &params[..1]).unwrap_err().to_string();
        assert!(missing.contains("tensor `blocks.0.bn1.weight` is not expected"), "{missing}");
        let params = vec![("stem.conv.weight".to_string(), var(&[16, 3, 3, 3])), ("head.fc.bias".into(), var(&[10]))];
        let err = load_into(&path, &params).unwrap_err().to_string();
        assert!(err.contains("tensor `head.fc.bias` is missing"), "{err}");
    }
}
