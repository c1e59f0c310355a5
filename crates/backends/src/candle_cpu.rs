//! candle on the CPU: always available.

use crate::{Backend, BackendError, BackendInfo, BackendKind, Executor};

/// candle's CPU device.
#[derive(Debug, Clone, Copy, Default)]
pub struct CandleCpu;

impl Backend for CandleCpu {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn probe(&self) -> BackendInfo {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // f32 products of a few rows (decoding) go through our kernel, picked at
        // run time; other f32 products through the `gemm` crate, which also
        // picks its kernels at run time; candle's quantized kernels are
        // chosen when compiling (AVX2 only in a build for a CPU that has it).
        let matvec = match ipfs_accelerate_kernels::MatVecKernel::detect() {
            Ok(Some(kernel)) => format!("ours on {}", kernel.name()),
            Ok(None) => "candle's".to_owned(),
            // A setting that is not understood is not ignored.
            Err(e) => return BackendInfo::new(self.kind(), false, e.to_string()),
        };
        let rows = ipfs_accelerate_kernels::MAX_ROWS;
        let quantized = if cfg!(target_feature = "avx2") {
            "AVX2"
        } else {
            "portable"
        };
        BackendInfo::new(
            self.kind(),
            true,
            format!(
                "candle on CPU, {threads} threads; this CPU has {}; f32 kernels picked at run time (products of up to {rows} rows: {matvec}), quantized kernels {quantized} (chosen at build time)",
                cpu_features()
            ),
        )
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        Ok(Executor::Candle(candle_core::Device::Cpu))
    }
}

/// The vector extensions this CPU has that kernels care about, detected at
/// run time (never assumed from the build machine).
pub fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut found = Vec::new();
        macro_rules! probe {
            ($($feature:tt => $name:expr),* $(,)?) => {
                $(if std::arch::is_x86_feature_detected!($feature) {
                    found.push($name);
                })*
            };
        }
        probe!(
            "avx2" => "AVX2",
            "fma" => "FMA",
            "f16c" => "F16C",
            "avx512f" => "AVX-512",
            "avx512vnni" => "AVX-512 VNNI",
            "avx512bf16" => "AVX-512 BF16",
            "avxvnni" => "AVX-VNNI",
        );
        if found.is_empty() {
            "no AVX2".to_owned()
        } else {
            found.join(", ")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_owned()
    }
}
