//! What the ONNX Runtime backends hand to skills: a way to open a graph as a
//! session on their execution provider, with the thread settings applied.

use crate::ort_options::{OrtOptions, Precision};
use crate::ort_runtime::{cpu_ep_devices, openvino_cpu_devices, OPENVINO_EP_NAME};
use crate::{BackendError, BackendKind, OrtSession};
use ort::environment::Environment;
use ort::session::Session;
use std::path::Path;

/// Which execution provider sessions get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    /// ONNX Runtime's own CPU kernels.
    Cpu,
    /// The OpenVINO plugin on the CPU (unsupported nodes stay on ORT's CPU
    /// provider, as ONNX Runtime partitions graphs).
    OpenVino(Precision),
}

/// Opens ONNX graphs on one ONNX Runtime backend.
#[derive(Debug, Clone)]
pub struct OrtExecutor {
    env: Environment,
    provider: Provider,
    options: OrtOptions,
}

impl OrtExecutor {
    pub(crate) fn new(env: Environment, provider: Provider, options: OrtOptions) -> Self {
        Self {
            env,
            provider,
            options,
        }
    }

    /// The backend sessions run on.
    pub fn kind(&self) -> BackendKind {
        match self.provider {
            Provider::Cpu => BackendKind::Ort,
            Provider::OpenVino(_) => BackendKind::OpenVino,
        }
    }

    /// The session settings.
    pub fn options(&self) -> OrtOptions {
        self.options
    }

    /// Creates a session for the graph at `model` (once per model load:
    /// creating one optimises and, on OpenVINO, compiles the graph).
    pub fn session(&self, model: &Path) -> Result<OrtSession, BackendError> {
        let kind = self.kind();
        let failed = |detail: String| BackendError::Session {
            kind,
            model: model.display().to_string(),
            detail,
        };
        // Without the memory-pattern planner: our graphs' shapes change from
        // call to call (sequence lengths, KV caches), where it only raised
        // the peak (Whisper-tiny on ort: 591 -> 496 MiB) for no speed
        // (docs/benchmarks.md).
        let mut builder = Session::builder(&self.env)
            .map_err(|e| failed(e.to_string()))?
            .with_memory_pattern(false)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(n) = self.options.intra_threads {
            builder = builder
                .with_intra_threads(n)
                .map_err(|e| failed(e.to_string()))?;
        }
        if let Some(n) = self.options.inter_threads.filter(|n| *n > 1) {
            builder = builder
                .with_parallel_execution(true)
                .map_err(|e| failed(e.to_string()))?
                .with_inter_threads(n)
                .map_err(|e| failed(e.to_string()))?;
        }
        // Devices are named explicitly: `ort` sets ONNX Runtime's automatic
        // EP selection policy, which would otherwise put an `ort` session on
        // the OpenVINO plugin once it is registered in this process.
        match self.provider {
            Provider::Cpu => {
                let devices = cpu_ep_devices(&self.env);
                builder = if devices.is_empty() {
                    builder.with_execution_providers([ort::ep::CPU::default().build()])
                } else {
                    builder.with_devices(devices, None)
                }
                .map_err(|e| failed(e.to_string()))?;
            }
            Provider::OpenVino(precision) => {
                let devices = openvino_cpu_devices(&self.env);
                if devices.is_empty() {
                    return Err(failed(
                        "the OpenVINO plugin offers no CPU device".to_owned(),
                    ));
                }
                // INFERENCE_PRECISION_HINT f32: without it OpenVINO computes in
                // bf16 on CPUs that have it (errors ~1e-2 instead of ~1e-6).
                let load_config = format!(
                    r#"{{"CPU":{{"INFERENCE_PRECISION_HINT":"{}"}}}}"#,
                    precision.hint()
                );
                let options = [(format!("{OPENVINO_EP_NAME}.load_config"), load_config)];
                builder = builder
                    .with_devices(devices, Some(&options))
                    .map_err(|e| failed(e.to_string()))?;
            }
        }
        let session = builder
            .commit_from_file(model)
            .map_err(|e| failed(e.to_string()))?;
        tracing::debug!(backend = %kind, model = %model.display(), options = %self.options, "ONNX Runtime session ready");
        Ok(OrtSession::new(session, kind))
    }
}
