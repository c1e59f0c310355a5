//! Our kernels inside llama.cpp: C++ in `crates/kernels/ggml/`, compiled
//! into ggml's CPU modules by `hook.cmake` (see `.cargo/config.toml`).
//!
//! One so far: Q4_1 and Q8_0 weights times a batch of rows on AVX-512 VNNI,
//! in place of ggml's AMX tile kernels, for continuous batching's steps and
//! prompts (`small_batch_mmq.cpp` says why and what was measured). It is
//! compiled into the modules built with AMX and VNNI, and ggml loads one of
//! those only on a CPU that has both, so which module runs says whether the
//! kernel does. This side reads the switch both sides obey and names the
//! kernel for `status`.

use crate::setting::{ours_wanted, KernelsSettingError};

/// The environment variable that leaves batches to ggml's own kernels
/// (`ggml`) or to ours (`ours`, the default): for comparisons, and as a
/// way out should ours misbehave on some CPU. The C++ side reads it too.
pub const GGML_KERNELS_ENV: &str = "IPFS_ACCELERATE_GGML_KERNELS";

/// The ggml CPU modules that contain our batched kernel.
const MODULES_WITH_OURS: [&str; 1] = ["sapphirerapids"];

/// Whose kernel multiplies batches of Q4_1 and Q8_0 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchedRowsKernel {
    /// Ours, on AVX-512 VNNI.
    Ours,
    /// ggml's (AMX tiles where the module has them, else its per-row dot
    /// products).
    Ggml,
}

impl BatchedRowsKernel {
    /// The kernel that runs with the ggml CPU module `module` (`zen4`,
    /// `sapphirerapids`, …) loaded, under [`GGML_KERNELS_ENV`].
    pub fn for_module(module: &str) -> Result<Self, KernelsSettingError> {
        Ok(
            if ours_wanted(GGML_KERNELS_ENV, "ggml")? && MODULES_WITH_OURS.contains(&module) {
                Self::Ours
            } else {
                Self::Ggml
            },
        )
    }

    /// How `status` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Ours => "ours on AVX-512 VNNI",
            Self::Ggml => "ggml's",
        }
    }
}
