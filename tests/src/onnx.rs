//! ONNX Runtime for the tests that check graphs themselves: one
//! environment loaded from `ORT_DYLIB_PATH`, sessions on files or on
//! in-memory models, tensors in and f32 arrays out.

use crate::Array;
use ort::session::Session;
use ort::value::{DynTensor, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The reason the ONNX tests give when `ORT_DYLIB_PATH` is unset.
const NO_ORT: &str = "ORT_DYLIB_PATH is not set (cargo xtask setup-ort)";

/// One ONNX Runtime environment for all tests, loaded from
/// `ORT_DYLIB_PATH`; `None` when the variable is unset.
pub fn ort_env() -> Option<&'static ort::environment::Environment> {
    static ENV: std::sync::OnceLock<ort::environment::Environment> = std::sync::OnceLock::new();
    let path = std::env::var_os("ORT_DYLIB_PATH")?;
    Some(ENV.get_or_init(|| {
        ort::init_from(path)
            .expect("ONNX Runtime loads from ORT_DYLIB_PATH")
            .build()
            .expect("an ONNX Runtime environment")
    }))
}

/// True when ONNX Runtime can run here; false after reporting the skip of
/// `test`.
pub fn have_ort(test: &str) -> bool {
    if ort_env().is_none() {
        crate::skip(test, NO_ORT);
        return false;
    }
    true
}

/// A session on the graph file `path`, or `None` (after reporting the skip
/// of `test`) without ONNX Runtime.
pub fn ort_session(test: &str, path: &Path) -> Option<Session> {
    if !have_ort(test) {
        return None;
    }
    let env = ort_env()?;
    let session = Session::builder(env)
        .expect("a session builder")
        .commit_from_file(path)
        .unwrap_or_else(|e| panic!("no session on {}: {e}", path.display()));
    Some(session)
}

/// A session on an in-memory model (`model` is its protobuf bytes); `Err`
/// carries ONNX Runtime's refusal.
pub fn session_from_memory(model: &[u8]) -> Result<Session, String> {
    let env = ort_env().ok_or("no ORT")?;
    Session::builder(env)
        .expect("a session builder")
        .commit_from_memory(model)
        .map_err(|e| e.to_string())
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// An int64 input tensor.
pub fn i64_tensor(shape: &[usize], data: Vec<i64>) -> DynTensor {
    Tensor::from_array((dims(shape), data))
        .expect("an i64 tensor")
        .upcast()
}

/// A float input tensor.
pub fn f32_tensor(shape: &[usize], data: Vec<f32>) -> DynTensor {
    Tensor::from_array((dims(shape), data))
        .expect("an f32 tensor")
        .upcast()
}

/// A session's outputs by name (every output is f32).
pub type Outputs = HashMap<String, Array>;

/// Runs `session` on `inputs`; `Err` carries ONNX Runtime's refusal.
pub fn run_session(
    session: &mut Session,
    inputs: HashMap<String, DynTensor>,
) -> Result<Outputs, String> {
    let outputs = session.run(inputs).map_err(|e| e.to_string())?;
    Ok(outputs
        .iter()
        .map(|(name, value)| {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .unwrap_or_else(|e| panic!("output {name}: {e}"));
            let shape = shape.iter().map(|&d| d as usize).collect();
            let array = Array {
                shape,
                data: data.to_vec(),
            };
            (name.to_owned(), array)
        })
        .collect())
}
