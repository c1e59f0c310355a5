//! candle on an NVIDIA GPU. Compiled only with the `cuda` feature; without it
//! the backend reports itself unavailable instead of pretending.

use crate::{Backend, BackendError, BackendInfo, BackendKind, Executor};

/// candle's CUDA device with the given ordinal.
#[derive(Debug, Clone, Copy, Default)]
pub struct CandleCuda {
    /// Which GPU.
    pub ordinal: usize,
}

/// Which GPU the CUDA backend uses (default 0).
pub const DEVICE_ENV: &str = "IPFS_ACCELERATE_CUDA_DEVICE";

impl CandleCuda {
    /// The GPU `IPFS_ACCELERATE_CUDA_DEVICE` names (an ordinal), else 0. A
    /// value that is not a number is reported by `probe`, not ignored.
    pub fn from_env() -> Self {
        Self::from_value(std::env::var(DEVICE_ENV).ok().as_deref())
    }

    fn from_value(value: Option<&str>) -> Self {
        let ordinal = match value.map(str::trim) {
            None | Some("") => 0,
            Some(v) => v.parse().unwrap_or(usize::MAX),
        };
        Self { ordinal }
    }

    #[cfg(feature = "cuda")]
    fn device(&self) -> Result<candle_core::Device, BackendError> {
        if self.ordinal == usize::MAX {
            return Err(BackendError::Unavailable {
                kind: BackendKind::Cuda,
                detail: format!("{DEVICE_ENV} must be a GPU ordinal (0, 1, ...)"),
            });
        }
        Ok(candle_core::Device::new_cuda(self.ordinal)?)
    }

    #[cfg(not(feature = "cuda"))]
    fn device(&self) -> Result<candle_core::Device, BackendError> {
        Err(BackendError::Unavailable {
            kind: BackendKind::Cuda,
            detail: "this build has no CUDA support (rebuild with --features cuda)".to_owned(),
        })
    }
}

impl Backend for CandleCuda {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn probe(&self) -> BackendInfo {
        let (available, detail) = match self.device() {
            Ok(_) => (true, format!("candle on CUDA device {}", self.ordinal)),
            Err(BackendError::Unavailable { detail, .. }) => (false, detail),
            Err(err) => (false, err.to_string()),
        };
        BackendInfo::new(self.kind(), available, detail)
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        Ok(Executor::Candle(self.device()?))
    }
}

#[cfg(test)]
mod tests {
    use super::CandleCuda;

    #[test]
    fn device_ordinal_from_the_environment_value() {
        assert_eq!(CandleCuda::from_value(None).ordinal, 0);
        assert_eq!(CandleCuda::from_value(Some(" 2 ")).ordinal, 2);
        assert_eq!(CandleCuda::from_value(Some("first")).ordinal, usize::MAX);
    }
}
