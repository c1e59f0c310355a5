//! ONNX Runtime with the OpenVINO execution provider. Not part of this build
//! yet: it reports itself unavailable.

use crate::onnx_runtime::NOT_BUILT;
use crate::{Backend, BackendError, BackendInfo, BackendKind, Executor};

/// ONNX Runtime + OpenVINO execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeOpenVino;

impl Backend for OnnxRuntimeOpenVino {
    fn kind(&self) -> BackendKind {
        BackendKind::OpenVino
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
