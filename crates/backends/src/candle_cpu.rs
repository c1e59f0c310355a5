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
        BackendInfo::new(
            self.kind(),
            true,
            format!("candle on CPU, {threads} threads"),
        )
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        Ok(Executor::Candle(candle_core::Device::Cpu))
    }
}
