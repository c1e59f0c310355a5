//! ONNX Runtime on the CPU execution provider. Not part of this build yet:
//! it reports itself unavailable rather than running anything else in its name.

use crate::{Backend, BackendError, BackendInfo, BackendKind, Executor};

/// ONNX Runtime, CPU execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeCpu;

pub(crate) const NOT_BUILT: &str = "the ONNX Runtime backend is not part of this build yet";

impl Backend for OnnxRuntimeCpu {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn probe(&self) -> BackendInfo {
        BackendInfo {
            name: self.kind().name().to_owned(),
            available: false,
            detail: NOT_BUILT.to_owned(),
        }
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        Err(BackendError::Unavailable {
            kind: self.kind(),
            detail: NOT_BUILT.to_owned(),
        })
    }
}
