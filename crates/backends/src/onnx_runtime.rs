//! ONNX Runtime on its CPU execution provider, loaded at run time from
//! `ORT_DYLIB_PATH` (`cargo xtask setup-ort` fetches it).

use crate::ort_executor::Provider;
use crate::ort_options::OrtOptions;
use crate::ort_runtime::runtime;
use crate::{
    Backend, BackendError, BackendInfo, BackendKind, Executor, OrtExecutor, OrtSetupError,
};

/// ONNX Runtime, CPU execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeCpu;

impl OnnxRuntimeCpu {
    fn ready(&self) -> Result<(OrtExecutor, String), OrtSetupError> {
        let runtime = runtime()?;
        let options = OrtOptions::from_env()?;
        let detail = format!(
            "ONNX Runtime from {}, CPU execution provider, {options}",
            runtime.library.display()
        );
        let executor = OrtExecutor::new(runtime.env.clone(), Provider::Cpu, options);
        Ok((executor, detail))
    }
}

impl Backend for OnnxRuntimeCpu {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn probe(&self) -> BackendInfo {
        let (available, detail) = match self.ready() {
            Ok((_, detail)) => (true, detail),
            Err(why) => (false, why.to_string()),
        };
        BackendInfo {
            name: self.kind().name().to_owned(),
            available,
            detail,
        }
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        let (executor, _) = self.ready().map_err(|source| BackendError::OrtSetup {
            kind: self.kind(),
            source,
        })?;
        Ok(Executor::Ort(executor))
    }
}
