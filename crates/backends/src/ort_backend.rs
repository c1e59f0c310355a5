//! What the ONNX Runtime backends share. They differ only in how they get
//! the runtime ready (which library, which execution provider, which
//! settings); probing and handing out the executor are the same for both, so
//! each one implements [`OrtBackend`] and gets [`Backend`] from here.

use crate::{
    Backend, BackendError, BackendInfo, BackendKind, Executor, OrtExecutor, OrtSetupError,
};

/// An ONNX Runtime backend: one execution provider, set up from the
/// environment.
pub(crate) trait OrtBackend: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    const KIND: BackendKind;

    /// The executor, and a line saying what was found (the probe's detail);
    /// fails with what is missing.
    fn ready(&self) -> Result<(OrtExecutor, String), OrtSetupError>;
}

impl<T: OrtBackend> Backend for T {
    fn kind(&self) -> BackendKind {
        T::KIND
    }

    fn probe(&self) -> BackendInfo {
        match self.ready() {
            Ok((_, detail)) => BackendInfo::new(T::KIND, true, detail),
            Err(why) => BackendInfo::new(T::KIND, false, why.to_string()),
        }
    }

    fn executor(&self) -> Result<Executor, BackendError> {
        let (executor, _) = self.ready().map_err(|source| BackendError::OrtSetup {
            kind: T::KIND,
            source,
        })?;
        Ok(Executor::Ort(executor))
    }
}
