//! Backends whose implementation is not part of this build report so, the
//! same way, instead of running anything in their name.

use crate::{BackendError, BackendInfo, BackendKind, Executor};

const DETAIL: &str = "the ONNX Runtime backend is not part of this build yet";

pub(crate) fn probe(kind: BackendKind) -> BackendInfo {
    BackendInfo {
        name: kind.name().to_owned(),
        available: false,
        detail: DETAIL.to_owned(),
    }
}

pub(crate) fn executor(kind: BackendKind) -> Result<Executor, BackendError> {
    Err(BackendError::Unavailable {
        kind,
        detail: DETAIL.to_owned(),
    })
}
