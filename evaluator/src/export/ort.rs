//! Runs an exported ONNX model in ONNX Runtime, through a Python interpreter that has
//! `onnxruntime` and `numpy` (env `MIXNAS_PYTHON`, else `python3`), to check the export against
//! our own forward. Where the `onnx` package is present too, its full checker runs first.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use candle_core::{Device, Result, Tensor};

/// Reads `[N, C, H, W]` f32 from stdin, prints the output's shape on one line, then its bytes.
const RUN_SCRIPT: &str = r#"
import sys
import numpy as np
import onnxruntime as ort
model, shape = sys.argv[1], [int(d) for d in sys.argv[2].split(",")]
try:
    import onnx
    onnx.checker.check_model(onnx.load(model), full_check=True)
except ImportError:
    pass
x = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4").reshape(shape)
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
y = session.run(None, {session.get_inputs()[0].name: x})[0].astype("<f4")
sys.stdout.buffer.write((",".join(map(str, y.shape)) + "\n").encode() + y.tobytes())
"#;

/// The interpreter to use, if it can import `onnxruntime` and `numpy`; the error says why not.
pub fn find_python() -> std::result::Result<String, String> {
    let python = std::env::var("MIXNAS_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import onnxruntime, numpy"]).output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} cannot import onnxruntime and numpy ({}); set MIXNAS_PYTHON to a Python that can (.ci/run makes one in target/ci-venv)",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("no message")
        )),
        Err(e) => Err(format!(
            "{python}: {e}; set MIXNAS_PYTHON to a Python with onnxruntime and numpy (.ci/run makes one in target/ci-venv)"
        )),
    }
}

/// Runs `model` on `input` (f32 `[N, C, H, W]`) in ONNX Runtime and returns its first output.
pub fn run(python: &str, model: &Path, input: &Tensor) -> Result<Tensor> {
    let shape: Vec<String> = input.dims().iter().map(|d| d.to_string()).collect();
    let bytes: Vec<u8> = input.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut child = Command::new(python)
        .args(["-c", RUN_SCRIPT])
        .arg(model)
        .arg(shape.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| candle_core::Error::Msg(format!("{python}: {e}")))?;
    // Written from a thread: the child may fill its stdout pipe before reading all of stdin.
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().map_err(|e| candle_core::Error::Msg(format!("{python}: {e}")))?;
    let _ = writer.join();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        candle_core::bail!("ONNX Runtime failed on {}: {}", model.display(), err.trim().lines().last().unwrap_or(""))
    }
    let newline =
        out.stdout.iter().position(|&b| b == b'\n').ok_or_else(|| candle_core::Error::Msg("no shape line".into()))?;
    let dims: Vec<usize> = std::str::from_utf8(&out.stdout[..newline])
        .map_err(candle_core::Error::wrap)?
        .split(',')
        .map(|d| d.trim().parse().map_err(candle_core::Error::wrap))
        .collect::<Result<_>>()?;
    let data: Vec<f32> =
        out.stdout[newline + 1..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    Tensor::from_vec(data, dims, &Device::Cpu)
}
