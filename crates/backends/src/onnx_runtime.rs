//! ONNX Runtime on its CPU execution provider, loaded at run time from
//! `ORT_DYLIB_PATH` (`cargo xtask setup-ort` fetches it).

use crate::ort_backend::OrtBackend;
use crate::ort_executor::Provider;
use crate::ort_options::OrtOptions;
use crate::ort_runtime::runtime;
use crate::{BackendKind, OrtExecutor, OrtSetupError};

/// ONNX Runtime, CPU execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeCpu;

impl OrtBackend for OnnxRuntimeCpu {
    const KIND: BackendKind = BackendKind::Ort;

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
