//! Loading a candle model on the first backend of the fallback chain that
//! can hold it.

use crate::SkillError;
use candle_core::Device;
use ipfs_accelerate_backends::{select, BackendError, BackendKind, Executor};

/// Tries `build` on each backend of the chain for `requested`; errors in the
/// model files stop at once (they are the same everywhere), other failures
/// fall back when the choice was `auto`. Returns the model, its device and
/// the backend that holds it.
pub(crate) fn load_on_chain<T>(
    requested: BackendKind,
    mut build: impl FnMut(&Device) -> Result<T, SkillError>,
) -> Result<(T, Device, BackendKind), SkillError> {
    let selection = select(requested, false, false)?;
    let mut failures = Vec::new();
    for candidate in &selection.chain {
        let kind = candidate.kind();
        let attempt = candidate
            .executor()
            .map_err(SkillError::from)
            .and_then(|ex| {
                let Executor::Candle(device) = ex;
                build(&device).map(|model| (model, device))
            });
        match attempt {
            Ok((model, device)) => return Ok((model, device, kind)),
            Err(err @ (SkillError::Weights { .. } | SkillError::Load(_))) => return Err(err),
            Err(err) if requested != BackendKind::Auto => return Err(err),
            Err(err) => {
                tracing::warn!(backend = %kind, "falling back: {err}");
                failures.push(format!("{kind}: {err}"));
            }
        }
    }
    Err(SkillError::Backend(BackendError::NoneLeft(
        failures.join("; "),
    )))
}
