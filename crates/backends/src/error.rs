//! Backend errors.

use crate::{BackendKind, OrtSetupError};

/// Why a backend could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `--backend` named something we do not know.
    #[error("unknown backend '{0}' (expected one of: auto, cpu, cuda, ort, openvino, llamacpp)")]
    UnknownName(String),
    /// The backend exists but cannot run here.
    #[error("backend '{kind}' is not available: {detail}")]
    Unavailable {
        /// Which backend.
        kind: BackendKind,
        /// Why not.
        detail: String,
    },
    /// An ONNX Runtime backend cannot run here: the runtime, its OpenVINO
    /// plugin or their settings are missing or unusable.
    #[error("backend '{kind}' is not available: {source}")]
    OrtSetup {
        /// Which backend.
        kind: BackendKind,
        /// What is missing.
        #[source]
        source: OrtSetupError,
    },
    /// The backend runs, but not this skill or this model.
    #[error("unsupported on {kind}: {why}")]
    Unsupported {
        /// Which backend.
        kind: BackendKind,
        /// What is missing.
        why: String,
    },
    /// ONNX Runtime could not open a graph (bad graph, unsupported operator,
    /// execution provider failure).
    #[error("{kind}: cannot create a session for {model}: {detail}")]
    Session {
        /// Which backend.
        kind: BackendKind,
        /// The graph file.
        model: String,
        /// ONNX Runtime's message.
        detail: String,
    },
    /// An ONNX Runtime run failed.
    #[error("{kind}: inference failed: {detail}")]
    Run {
        /// Which backend.
        kind: BackendKind,
        /// ONNX Runtime's message.
        detail: String,
    },
    /// No backend in the chain can run this model.
    #[error("no backend can run this model: {0}")]
    NoneLeft(String),
    /// The underlying tensor library failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
