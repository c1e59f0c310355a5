//! ONNX Runtime with the OpenVINO execution provider on the CPU: the plugin
//! library (`IPFS_ACCELERATE_OPENVINO_EP`, from `cargo xtask setup-ort`) is
//! registered at run time; inference precision is f32 unless
//! `IPFS_ACCELERATE_OPENVINO_PRECISION` asks for less.

use crate::ort_backend::OrtBackend;
use crate::ort_executor::Provider;
use crate::ort_options::{OrtOptions, Precision};
use crate::ort_runtime::openvino;
use crate::{BackendKind, OrtExecutor, OrtSetupError};

/// ONNX Runtime + OpenVINO execution provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxRuntimeOpenVino;

impl OrtBackend for OnnxRuntimeOpenVino {
    const KIND: BackendKind = BackendKind::OpenVino;

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
