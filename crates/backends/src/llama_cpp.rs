//! llama.cpp (feature `llama-cpp`): GGUF models on ggml's CPU kernels.
//!
//! ggml is built with one CPU module per x86 level (`libggml-cpu-haswell`,
//! `-skylakex`, `-icelake`, `-zen4`, …); at start ggml scores each against
//! this CPU's features and loads the best one it can run, so the same binary
//! runs on a CPU without AVX-512 and uses VNNI where there is. The probe
//! names the module that was loaded, and whose kernel multiplies batches
//! of Q4_1 and Q8_0 rows (ours, built into the modules with AMX and VNNI:
//! [`ipfs_accelerate_kernels::ggml`]).

use crate::{Backend, BackendError, BackendInfo, BackendKind, Executor};
use ipfs_accelerate_kernels::ggml::BatchedRowsKernel;
use std::sync::OnceLock;

pub use llama_cpp_2::llama_backend::LlamaBackend;

/// Where ggml's CPU modules are looked for when `GGML_BACKENDS_DIR` is not
/// set: the folder the build put them in.
const BACKENDS_DIR_ENV: &str = "IPFS_ACCELERATE_GGML_BACKENDS_DIR";

/// llama.cpp's process-wide state, made once: ggml's CPU modules loaded, then
/// `llama_backend_init`. The error is kept as text so every caller sees it.
pub fn llama_backend() -> Result<&'static LlamaBackend, BackendError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // ggml and llama.cpp log to stderr by default: into `tracing`
            // instead (from here on, module loading included).
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            match std::env::var_os(BACKENDS_DIR_ENV) {
                Some(dir) => {
                    // The binding takes a UTF-8 path (it panics otherwise).
                    let dir = dir.to_str().ok_or_else(|| {
                        format!("{BACKENDS_DIR_ENV} is not a UTF-8 path: {dir:?}")
                    })?;
                    llama_cpp_2::llama_backend::load_backends_from_path(std::path::Path::new(dir))
                }
                None => llama_cpp_2::llama_backend::load_backends(),
            }
            let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            let Some(module) = cpu_module() else {
                return Err(format!(
                    "no ggml CPU module could be loaded (looked in {}; set {BACKENDS_DIR_ENV})",
                    llama_cpp_sys_2::BACKENDS_DIR.unwrap_or("(none built in)")
                ));
            };
            // Our kernels in the module read the same setting; a value
            // neither side knows is refused, not ignored.
            BatchedRowsKernel::for_module(&module).map_err(|e| e.to_string())?;
            Ok(backend)
        })
        .as_ref()
        .map_err(|detail| BackendError::Unavailable {
            kind: BackendKind::LlamaCpp,
            detail: detail.clone(),
        })
}

/// The ggml CPU module this process loaded (`zen4`, `haswell`, …), read
/// from the process's memory map (Linux): what really runs, not a guess.
pub fn cpu_module() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let file = line.trim_end_matches(" (deleted)").rsplit('/').next()?;
        let variant = file.strip_prefix("libggml-cpu")?.strip_suffix(".so")?;
        Some(variant.trim_start_matches('-').to_owned()).filter(|v| !v.is_empty())
    })
}

/// llama.cpp as a backend: available when its CPU module loads.
#[derive(Debug, Clone, Copy, Default)]
pub struct LlamaCpp;

impl Backend for LlamaCpp {
    fn kind(&self) -> BackendKind {
        BackendKind::LlamaCpp
    }

    fn probe(&self) -> BackendInfo {
        match llama_backend() {
            Ok(_) => {
                let module = cpu_module().unwrap_or_else(|| "unknown".to_owned());
                // Checked when the backend started, so this holds.
                let batched = BatchedRowsKernel::for_module(&module)
                    .map_or("ggml's", BatchedRowsKernel::describe);
                BackendInfo::new(
                    self.kind(),
                    true,
                    format!(
                        "llama.cpp for GGUF models, ggml CPU kernels '{module}'; batches of Q4_1 and Q8_0 rows: {batched}"
                    ),
                )
            }
            Err(e) => BackendInfo::new(self.kind(), false, e.to_string()),
        }
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        // GGUF loading talks to llama.cpp itself; no skill asks for an
        // executor from it (selection keeps it out of every chain).
        Err(BackendError::Unsupported {
            kind: self.kind(),
            why: "llama.cpp runs GGUF models only".to_owned(),
        })
    }
}
