//! ONNX Runtime with the OpenVINO execution provider. Not part of this build
//! yet: it reports itself unavailable.

use crate::{not_built, Backend, BackendError, BackendInfo, BackendKind, Executor};

/// ONNX Runtime + OpenVINO execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeOpenVino;

impl Backend for OnnxRuntimeOpenVino {
    fn kind(&self) -> BackendKind {
        BackendKind::OpenVino
    }

    fn probe(&self) -> BackendInfo {
        not_built::probe(self.kind())
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        not_built::executor(self.kind())
    }
}
