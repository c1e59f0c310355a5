//! ONNX Runtime with the OpenVINO execution provider on the CPU: the plugin
//! library (`IPFS_ACCELERATE_OPENVINO_EP`, from `cargo xtask setup-ort`) is
//! registered at run time; inference precision is f32 unless
//! `IPFS_ACCELERATE_OPENVINO_PRECISION` asks for less.

use crate::ort_executor::Provider;
use crate::ort_options::{OrtOptions, Precision};
use crate::ort_runtime::openvino;
use crate::{
    Backend, BackendError, BackendInfo, BackendKind, Executor, OrtExecutor, OrtSetupError,
};

/// ONNX Runtime + OpenVINO execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeOpenVino;

impl OnnxRuntimeOpenVino {
    fn ready(&self) -> Result<(OrtExecutor, String), OrtSetupError> {
        let (runtime, plugin) = openvino()?;
        let options = OrtOptions::from_env()?;
        let precision = Precision::from_env()?;
        let detail = format!(
            "OpenVINO execution provider {} on CPU, precision {}, ONNX Runtime from {}, {options}",
            plugin.display(),
            precision.hint(),
            runtime.library.display()
        );
        let executor =
            OrtExecutor::new(runtime.env.clone(), Provider::OpenVino(precision), options);
        Ok((executor, detail))
    }
}

impl Backend for OnnxRuntimeOpenVino {
    fn kind(&self) -> BackendKind {
        BackendKind::OpenVino
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
