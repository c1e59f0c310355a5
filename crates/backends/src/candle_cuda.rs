//! candle on an NVIDIA GPU. Compiled only with the `cuda` feature; without it
//! the backend reports itself unavailable instead of pretending.

use crate::{Backend, BackendError, BackendInfo, BackendKind, Executor};

/// candle's CUDA device with the given ordinal.
#[derive(Debug, Clone, Copy, Default)]
pub struct CandleCuda {
    /// Which GPU.
    pub ordinal: usize,
}

impl CandleCuda {
    #[cfg(feature = "cuda")]
    fn device(&self) -> Result<candle_core::Device, BackendError> {
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
        BackendInfo {
            name: self.kind().name().to_owned(),
            available,
            detail,
        }
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        Ok(Executor::Candle(self.device()?))
    }
}
