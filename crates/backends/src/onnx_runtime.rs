//! ONNX Runtime on the CPU execution provider. Not part of this build yet:
//! it reports itself unavailable rather than running anything else in its name.

use crate::{not_built, Backend, BackendError, BackendInfo, BackendKind, Executor};

/// ONNX Runtime, CPU execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeCpu;

impl Backend for OnnxRuntimeCpu {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn probe(&self) -> BackendInfo {
        not_built::probe(self.kind())
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        not_built::executor(self.kind())
    }
}
