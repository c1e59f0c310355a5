//! The process-wide ONNX Runtime: its shared library, loaded from
//! `ORT_DYLIB_PATH`, the one environment `ort` allows per process, and the
//! OpenVINO plugin execution provider registered into it.
//!
//! Both are set up at most once and the outcome (success or the reason for
//! failure) is kept, so `status`, `auto` and every session see the same
//! answer without reloading anything.

use crate::ort_options::OrtOptionsError;
use ort::environment::Environment;
use ort::memory::DeviceType;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The ONNX Runtime shared library (`libonnxruntime.so.1.31.1`).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// The OpenVINO plugin execution provider library
/// (`libonnxruntime_providers_openvino_plugin.so`).
pub const OPENVINO_EP_ENV: &str = "IPFS_ACCELERATE_OPENVINO_EP";
/// How to get both.
pub const INSTALL_HINT: &str =
    "run `cargo xtask setup-ort` and export the ORT_DYLIB_PATH and IPFS_ACCELERATE_OPENVINO_EP lines it prints";
/// The execution provider name the OpenVINO plugin registers.
pub(crate) const OPENVINO_EP_NAME: &str = "OpenVINOExecutionProvider";
/// ONNX Runtime's built-in CPU execution provider.
const CPU_EP_NAME: &str = "CPUExecutionProvider";

/// Why ONNX Runtime, its OpenVINO plugin or their settings cannot be used.
/// Cloneable: the outcome of loading is kept for the whole process.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtSetupError {
    /// `ORT_DYLIB_PATH` is unset or empty.
    #[error("{DYLIB_ENV} is not set; {INSTALL_HINT}")]
    DylibUnset,
    /// `ORT_DYLIB_PATH` names no file.
    #[error("{DYLIB_ENV}={} is not a file; {INSTALL_HINT}", .0.display())]
    DylibNotAFile(PathBuf),
    /// The shared library could not be loaded.
    #[error("cannot load ONNX Runtime from {}: {source}", library.display())]
    Load {
        /// The library file.
        library: PathBuf,
        /// Why `ort` could not load it.
        #[source]
        source: Arc<ort::LoadDynamicError>,
    },
    /// The library loaded but no environment could be created.
    #[error("ONNX Runtime environment: {0}")]
    Environment(#[source] Arc<ort::Error>),
    /// `IPFS_ACCELERATE_OPENVINO_EP` is unset or empty.
    #[error("the OpenVINO execution provider is not installed: {OPENVINO_EP_ENV} is not set; {INSTALL_HINT}")]
    PluginUnset,
    /// `IPFS_ACCELERATE_OPENVINO_EP` names no file.
    #[error("{OPENVINO_EP_ENV}={} is not a file; {INSTALL_HINT}", .0.display())]
    PluginNotAFile(PathBuf),
    /// ONNX Runtime refused the OpenVINO plugin.
    #[error("cannot register the OpenVINO plugin {}: {source}; {INSTALL_HINT}", plugin.display())]
    Register {
        /// The plugin library.
        plugin: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: Arc<ort::Error>,
    },
    /// The plugin registered but lists no CPU device. It offers Intel
    /// processors only (ONNX Runtime's device vendor id 0x8086), so on
    /// another vendor's CPU this is the hardware, not the setup.
    #[error(
        "the OpenVINO plugin {} offers no CPU device{}",
        plugin.display(),
        match vendor {
            Some(v) if v != INTEL_VENDOR => format!(
                " (it runs on Intel processors; this CPU is {v})"
            ),
            _ => String::new(),
        }
    )]
    NoCpuDevice {
        /// The plugin library.
        plugin: PathBuf,
        /// This CPU's vendor (`GenuineIntel`, `AuthenticAMD`, ...), when
        /// the system says.
        vendor: Option<String>,
    },
    /// A session setting in the environment is invalid.
    #[error(transparent)]
    Options(#[from] OrtOptionsError),
}

/// A loaded ONNX Runtime.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub env: Environment,
    pub library: PathBuf,
}

static RUNTIME: OnceLock<Result<Runtime, OrtSetupError>> = OnceLock::new();
static OPENVINO: OnceLock<Result<PathBuf, OrtSetupError>> = OnceLock::new();

/// The runtime, loading it on first use; the error says what is missing.
pub(crate) fn runtime() -> Result<&'static Runtime, OrtSetupError> {
    RUNTIME
        .get_or_init(load_runtime)
        .as_ref()
        .map_err(Clone::clone)
}

fn load_runtime() -> Result<Runtime, OrtSetupError> {
    let library = match std::env::var_os(DYLIB_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => return Err(OrtSetupError::DylibUnset),
    };
    if !library.is_file() {
        return Err(OrtSetupError::DylibNotAFile(library));
    }
    // `ort` panics if its API is touched before a library is loaded, so the
    // library is loaded here, checked, before anything else of `ort` runs.
    let builder = match ort::init_from(&library) {
        Ok(builder) => builder,
        Err(e) => {
            return Err(OrtSetupError::Load {
                library,
                source: Arc::new(e),
            })
        }
    };
    let env = builder
        .with_name("ipfs-accelerate")
        .build()
        .map_err(|e| OrtSetupError::Environment(Arc::new(e)))?;
    tracing::debug!(library = %library.display(), "ONNX Runtime loaded");
    Ok(Runtime { env, library })
}

/// Registers the OpenVINO plugin once; returns its library path. Fails when
/// the runtime or the plugin is missing, or the plugin offers no CPU device.
pub(crate) fn openvino() -> Result<(&'static Runtime, &'static Path), OrtSetupError> {
    let runtime = runtime()?;
    let plugin = OPENVINO
        .get_or_init(|| register_openvino(runtime))
        .as_ref()
        .map_err(Clone::clone)?;
    Ok((runtime, plugin.as_path()))
}

fn register_openvino(runtime: &Runtime) -> Result<PathBuf, OrtSetupError> {
    let plugin = match std::env::var_os(OPENVINO_EP_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => return Err(OrtSetupError::PluginUnset),
    };
    if !plugin.is_file() {
        return Err(OrtSetupError::PluginNotAFile(plugin));
    }
    if let Err(e) = runtime.env.register_ep_library(OPENVINO_EP_NAME, &plugin) {
        return Err(OrtSetupError::Register {
            plugin,
            source: Arc::new(e),
        });
    }
    if !has_openvino_cpu(&runtime.env) {
        return Err(OrtSetupError::NoCpuDevice {
            plugin,
            vendor: cpu_vendor(),
        });
    }
    tracing::debug!(plugin = %plugin.display(), "OpenVINO execution provider registered");
    Ok(plugin)
}

/// `/proc/cpuinfo`'s vendor of Intel processors.
const INTEL_VENDOR: &str = "GenuineIntel";

/// This CPU's vendor as `/proc/cpuinfo` names it (`None` elsewhere).
pub fn cpu_vendor() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("vendor_id"))
        .and_then(|rest| rest.split(':').nth(1))
        .map(|v| v.trim().to_owned())
}

/// Whether the OpenVINO execution provider can offer a CPU device here at
/// all: it serves Intel processors only.
pub fn openvino_supports_this_cpu() -> bool {
    cpu_vendor().is_none_or(|v| v == INTEL_VENDOR)
}

/// ONNX Runtime's own CPU execution provider device.
pub(crate) fn cpu_ep_devices(env: &Environment) -> Vec<ort::device::Device<'_>> {
    env.devices()
        .filter(|d| d.ep().is_ok_and(|ep| ep == CPU_EP_NAME))
        .collect()
}

/// The OpenVINO plugin's CPU devices (it also lists `...AUTO` meta devices
/// under another EP name, and GPUs/NPUs where present).
pub(crate) fn openvino_cpu_devices(env: &Environment) -> Vec<ort::device::Device<'_>> {
    env.devices()
        .filter(|d| {
            d.ep().is_ok_and(|ep| ep == OPENVINO_EP_NAME)
                && d.hardware_device().ty() == DeviceType::CPU
        })
        .collect()
}

fn has_openvino_cpu(env: &Environment) -> bool {
    !openvino_cpu_devices(env).is_empty()
}
