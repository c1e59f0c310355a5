//! Loading a candle model on the first backend of the fallback chain that
//! can hold it.

use crate::SkillError;
use candle_core::Device;
use ipfs_accelerate_backends::{
    is_out_of_memory, select, BackendError, BackendKind, Executor, OrtExecutor,
};

/// What to do after a backend failed to load the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// Report this error: the model files are bad (the same everywhere), or
    /// the backend was asked for explicitly.
    Stop,
    /// `auto`: try the next backend of the chain.
    TryNext,
    /// The GPU ran out of memory: load on the CPU instead, even when CUDA
    /// was asked for by name (a model too large for the card still runs).
    Cpu,
}

fn after_failure(requested: BackendKind, failed: BackendKind, err: &SkillError) -> AfterFailure {
    match err {
        SkillError::Weights { .. } | SkillError::Load(_) => AfterFailure::Stop,
        _ if failed == BackendKind::Cuda && is_out_of_memory(&err.to_string()) => AfterFailure::Cpu,
        _ if requested != BackendKind::Auto => AfterFailure::Stop,
        _ => AfterFailure::TryNext,
    }
}

/// Tries `build` on each backend of the chain for `requested`; errors in the
/// model files stop at once (they are the same everywhere), other failures
/// fall back when the choice was `auto`, and a CUDA out-of-memory error
/// falls back to the CPU in any case. Returns the model, its device and the
/// backend that holds it.
pub(crate) fn load_on_chain<T>(
    requested: BackendKind,
    mut build: impl FnMut(&Device) -> Result<T, SkillError>,
) -> Result<(T, Device, BackendKind), SkillError> {
    let selection = select(requested, false, false)?;
    let candidates = selection
        .chain
        .iter()
        .map(|backend| (backend.kind(), backend.executor()));
    let ((model, device), kind) = load_on_candidates(requested, candidates, |executor| {
        match executor {
            Executor::Candle(device) => build(device).map(|model| (model, device.clone())),
            // `select` left ONNX backends out: this skill has no ONNX path.
            Executor::Ort(ort) => Err(BackendError::Unsupported {
                kind: ort.kind(),
                why: "this skill has no ONNX Runtime path".to_owned(),
            }
            .into()),
        }
    })?;
    Ok((model, device, kind))
}

/// [`load_on_chain`] for skills that also run ONNX graphs: when the model
/// ships one (`has_onnx_graph`), `auto` tries OpenVINO, then ONNX Runtime on
/// the CPU (`build_onnx`, which creates the session), then candle
/// (`build_candle`), falling back on any session-creation failure.
pub(crate) fn load_on_chain_with_onnx<T>(
    requested: BackendKind,
    has_onnx_graph: bool,
    mut build_onnx: impl FnMut(&OrtExecutor) -> Result<T, SkillError>,
    mut build_candle: impl FnMut(&Device) -> Result<T, SkillError>,
) -> Result<(T, BackendKind), SkillError> {
    let selection = select(requested, has_onnx_graph, true)?;
    let candidates = selection
        .chain
        .iter()
        .map(|backend| (backend.kind(), backend.executor()));
    load_on_candidates(requested, candidates, |executor| match executor {
        Executor::Candle(device) => build_candle(device),
        Executor::Ort(ort) => build_onnx(ort),
    })
}

/// Tries `build` on the given `(backend, executor)` candidates in order.
fn load_on_candidates<T>(
    requested: BackendKind,
    candidates: impl IntoIterator<Item = (BackendKind, Result<Executor, BackendError>)>,
    mut build: impl FnMut(&Executor) -> Result<T, SkillError>,
) -> Result<(T, BackendKind), SkillError> {
    let mut failures = Vec::new();
    for (kind, executor) in candidates {
        let attempt = executor.map_err(SkillError::from).and_then(|ex| build(&ex));
        let err = match attempt {
            Ok(model) => return Ok((model, kind)),
            Err(err) => err,
        };
        match after_failure(requested, kind, &err) {
            AfterFailure::Stop => return Err(err),
            AfterFailure::TryNext => {
                tracing::warn!(backend = %kind, "falling back: {err}");
                failures.push(format!("{kind}: {err}"));
            }
            AfterFailure::Cpu => {
                tracing::warn!(backend = %kind, "out of GPU memory, loading on the CPU: {err}");
                return build(&Executor::Candle(Device::Cpu))
                    .map(|model| (model, BackendKind::Cpu));
            }
        }
    }
    Err(SkillError::Backend(BackendError::NoneLeft(
        failures.join("; "),
    )))
}

/// Runs `run` on `model`, loaded on `backend`; when that fails because the
/// GPU ran out of memory (a batch or a sequence too large for the card),
/// loads the model again on the CPU with `reload_on_cpu` and runs there.
/// Returns the model that answered (so callers report its backend) and the
/// answer.
pub fn retry_on_cpu_after_oom<M, T>(
    model: M,
    backend: BackendKind,
    mut run: impl FnMut(&M) -> Result<T, SkillError>,
    reload_on_cpu: impl FnOnce() -> Result<M, SkillError>,
) -> Result<(M, T), SkillError> {
    match run(&model) {
        Ok(answer) => Ok((model, answer)),
        Err(err) if backend == BackendKind::Cuda && is_out_of_memory(&err.to_string()) => {
            tracing::warn!("out of GPU memory, running on the CPU instead: {err}");
            drop(model);
            let model = reload_on_cpu()?;
            let answer = run(&model)?;
            Ok((model, answer))
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The error candle reports when a CUDA allocation fails.
    fn injected_oom() -> SkillError {
        SkillError::Backend(BackendError::Candle(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".to_owned(),
        )))
    }

    /// A CUDA candidate (its device stands in as CPU: no GPU here; the build
    /// closure injects the failure).
    fn cuda_candidate() -> (BackendKind, Result<Executor, BackendError>) {
        (BackendKind::Cuda, Ok(Executor::Candle(Device::Cpu)))
    }

    #[test]
    fn out_of_memory_on_cuda_loads_on_the_cpu_even_when_asked_for_cuda() {
        for requested in [BackendKind::Cuda, BackendKind::Auto] {
            let mut calls = 0;
            let (model, kind) = load_on_candidates(requested, [cuda_candidate()], |_executor| {
                calls += 1;
                if calls == 1 {
                    Err(injected_oom())
                } else {
                    Ok("loaded")
                }
            })
            .unwrap();
            assert_eq!((model, kind, calls), ("loaded", BackendKind::Cpu, 2));
        }
    }

    #[test]
    fn other_failures_follow_the_requested_backend() {
        let failure = || SkillError::InvalidInput("kernel missing".to_owned());
        // Asked for CUDA by name: its failure is the answer.
        let err = load_on_candidates(BackendKind::Cuda, [cuda_candidate()], |_| {
            Err::<(), _>(failure())
        })
        .unwrap_err();
        assert!(err.to_string().contains("kernel missing"), "{err}");
        // auto: on to the next backend.
        let cpu = (BackendKind::Cpu, Ok(Executor::Candle(Device::Cpu)));
        let mut calls = 0;
        let (_, kind) = load_on_candidates(BackendKind::Auto, [cuda_candidate(), cpu], |_| {
            calls += 1;
            if calls == 1 {
                Err(failure())
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(kind, BackendKind::Cpu);
        // Out of memory on the CPU is not a reason to try the CPU again.
        assert_eq!(
            after_failure(BackendKind::Auto, BackendKind::Cpu, &injected_oom()),
            AfterFailure::TryNext
        );
        assert_eq!(
            after_failure(BackendKind::Cpu, BackendKind::Cpu, &injected_oom()),
            AfterFailure::Stop
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod retry_tests {
    use super::*;

    fn injected_oom() -> SkillError {
        SkillError::Backend(BackendError::Candle(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".to_owned(),
        )))
    }

    #[test]
    fn inference_out_of_memory_on_cuda_reruns_on_the_cpu() {
        // The "model" is the backend it was loaded on; running on CUDA fails.
        let run = |on: &BackendKind| match on {
            BackendKind::Cuda => Err(injected_oom()),
            other => Ok(format!("answer from {other}")),
        };
        let (model, answer) =
            retry_on_cpu_after_oom(BackendKind::Cuda, BackendKind::Cuda, run, || {
                Ok(BackendKind::Cpu)
            })
            .unwrap();
        assert_eq!(
            (model, answer.as_str()),
            (BackendKind::Cpu, "answer from cpu")
        );
    }

    #[test]
    fn other_inference_errors_are_not_retried() {
        let mut reloaded = false;
        let err = retry_on_cpu_after_oom(
            BackendKind::Cuda,
            BackendKind::Cuda,
            |_| Err::<(), _>(SkillError::InvalidInput("the prompt is empty".to_owned())),
            || {
                reloaded = true;
                Ok(BackendKind::Cpu)
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(!reloaded);
        // Out of memory on the CPU has nowhere to go.
        let err = retry_on_cpu_after_oom(
            BackendKind::Cpu,
            BackendKind::Cpu,
            |_| Err::<(), _>(injected_oom()),
            || Ok(BackendKind::Cpu),
        )
        .unwrap_err();
        assert!(err.to_string().contains("OUT_OF_MEMORY"), "{err}");
    }
}
