//! Backend errors.

use crate::BackendKind;

/// Why a backend could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `--backend` named something we do not know.
    #[error("unknown backend '{0}' (expected one of: auto, cpu, cuda, ort, openvino)")]
    UnknownName(String),
    /// The backend exists but cannot run here.
    #[error("backend '{kind}' is not available: {detail}")]
    Unavailable {
        /// Which backend.
        kind: BackendKind,
        /// Why not.
        detail: String,
    },
    /// No backend in the chain can run this model.
    #[error("no backend can run this model: {0}")]
    NoneLeft(String),
    /// The underlying tensor library failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
