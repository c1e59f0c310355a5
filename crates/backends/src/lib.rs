//! Backends: where a skill's tensors live and run.
//!
//! Each backend is one file implementing [`Backend`]; [`registry`] lists them
//! in fallback order and [`select`] turns a requested [`BackendKind`] into the
//! ordered chain a skill tries. An explicitly requested backend either runs or
//! fails with a clear error; only `auto` falls back, and the backend that really
//! ran is always reported.

mod candle_cpu;
mod candle_cuda;
mod error;
mod kind;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp;
mod onnx_runtime;
mod openvino;
mod ort_backend;
mod ort_executor;
mod ort_options;
mod ort_runtime;
mod ort_session;
mod out_of_memory;
mod selection;

pub use candle_cpu::{cpu_features, CandleCpu};
pub use candle_cuda::CandleCuda;
pub use error::BackendError;
pub use kind::BackendKind;
pub use onnx_runtime::OnnxRuntimeCpu;
pub use openvino::OnnxRuntimeOpenVino;
pub use ort_executor::OrtExecutor;
pub use ort_options::{
    OrtOptions, OrtOptionsError, Precision, INTER_THREADS_ENV, OPENVINO_PRECISION_ENV, THREADS_ENV,
};
pub use ort_runtime::{
    cpu_vendor, openvino_supports_this_cpu, OrtSetupError, DYLIB_ENV, INSTALL_HINT, OPENVINO_EP_ENV,
};
pub use ort_session::{OrtInput, OrtIo, OrtOutputs, OrtSession, OrtValue};
pub use out_of_memory::is_out_of_memory;
pub use selection::{select, Selection};

use serde::Serialize;

/// How a backend executes a model.
#[derive(Debug, Clone)]
pub enum Executor {
    /// candle tensors on this device (CPU, or CUDA with the `cuda` feature).
    Candle(candle_core::Device),
    /// ONNX graphs on ONNX Runtime (CPU or OpenVINO execution provider).
    Ort(OrtExecutor),
}

/// Whether a backend can run here, and why (not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendInfo {
    /// The name users pass to `--backend`.
    pub name: String,
    /// True when the backend can be used on this machine now.
    pub available: bool,
    /// What was found, or what is missing.
    pub detail: String,
}

impl BackendInfo {
    /// What `kind`'s probe found: whether it can run here, and the detail.
    pub(crate) fn new(kind: BackendKind, available: bool, detail: String) -> Self {
        Self {
            name: kind.name().to_owned(),
            available,
            detail,
        }
    }
}

/// One way of running models.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Whether it can run here, with a human-readable detail.
    fn probe(&self) -> BackendInfo;
    /// The executor skills run on; fails when the backend is unavailable.
    fn executor(&self) -> Result<Executor, BackendError>;
}

/// Every backend, in `auto`'s order of preference (fastest first).
pub fn registry() -> Vec<Box<dyn Backend>> {
    vec![
        // GGUF models only; selection keeps it out of every other chain.
        #[cfg(feature = "llama-cpp")]
        Box::new(llama_cpp::LlamaCpp),
        Box::new(OnnxRuntimeOpenVino),
        Box::new(OnnxRuntimeCpu),
        Box::new(CandleCuda::from_env()),
        Box::new(CandleCpu),
    ]
}

/// What `status` reports: every backend and whether it is available.
pub fn report() -> Vec<BackendInfo> {
    registry().iter().map(|b| b.probe()).collect()
}
