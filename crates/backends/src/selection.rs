//! Turning a requested backend into the chain a skill tries.

use crate::{registry, Backend, BackendError, BackendKind};

/// Why llama.cpp is in no skill's chain.
const GGUF_ONLY: &str = "llama.cpp runs GGUF models only (--model <repo>/<file>.gguf)";

/// The backends to try, in order, and why others were skipped.
#[derive(Debug)]
pub struct Selection {
    /// Usable backends, best first.
    pub chain: Vec<Box<dyn Backend>>,
    /// `(backend, reason)` for each backend `auto` passed over.
    pub skipped: Vec<(BackendKind, String)>,
}

/// Builds the chain for `requested`.
///
/// * An explicit backend is the whole chain; if it cannot run here that is an
///   error, never a silent substitute.
/// * `auto` keeps every available backend in preference order; ONNX backends
///   only when the model ships an ONNX graph (`has_onnx_graph`) and the skill
///   can use it (`skill_runs_onnx`).
pub fn select(
    requested: BackendKind,
    has_onnx_graph: bool,
    skill_runs_onnx: bool,
) -> Result<Selection, BackendError> {
    if requested.runs_gguf_only() {
        // It is never in a chain (GGUF loading asks for it directly), with
        // or without the `llama-cpp` feature.
        return Err(BackendError::Unsupported {
            kind: requested,
            why: GGUF_ONLY.to_owned(),
        });
    }
    let mut chain = Vec::new();
    let mut skipped = Vec::new();
    for backend in registry() {
        let kind = backend.kind();
        if requested != BackendKind::Auto && requested != kind {
            continue;
        }
        // What the skill or model lacks comes first: it holds on any machine,
        // so it is the more useful answer than a missing runtime.
        let unsupported = if kind.runs_gguf_only() {
            Some(GGUF_ONLY.to_owned())
        } else if kind.needs_onnx_graph() && !skill_runs_onnx {
            Some("this skill has no ONNX Runtime path (use --backend cpu or auto)".to_owned())
        } else if kind.needs_onnx_graph() && !has_onnx_graph {
            Some("the model has no ONNX graph (onnx/model.onnx)".to_owned())
        } else {
            None
        };
        if let Some(why) = unsupported {
            if requested != BackendKind::Auto {
                return Err(BackendError::Unsupported { kind, why });
            }
            skipped.push((kind, why));
            continue;
        }
        let info = backend.probe();
        if info.available {
            chain.push(backend);
        } else if requested != BackendKind::Auto {
            return Err(BackendError::Unavailable {
                kind,
                detail: info.detail,
            });
        } else {
            skipped.push((kind, info.detail));
        }
    }
    if chain.is_empty() {
        let why = skipped
            .iter()
            .map(|(k, d)| format!("{k}: {d}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(BackendError::NoneLeft(why));
    }
    for (kind, why) in &skipped {
        tracing::debug!(backend = %kind, "auto passes over: {why}");
    }
    Ok(Selection { chain, skipped })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn auto_ends_at_candle_cpu() {
        let s = select(BackendKind::Auto, true, true).unwrap();
        assert_eq!(s.chain.last().unwrap().kind(), BackendKind::Cpu);
    }

    #[test]
    fn explicit_unavailable_backend_is_an_error() {
        if !cfg!(feature = "cuda") {
            let err = select(BackendKind::Cuda, false, false).unwrap_err();
            assert!(err.to_string().contains("cuda"), "{err}");
        }
    }

    #[test]
    fn onnx_backends_need_a_skill_path_and_a_graph() {
        for kind in [BackendKind::Ort, BackendKind::OpenVino] {
            let err = select(kind, true, false).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("unsupported on {kind}: ")),
                "{err}"
            );
            let err = select(kind, false, true).unwrap_err();
            assert!(err.to_string().contains("no ONNX graph"), "{err}");
        }
        let s = select(BackendKind::Auto, false, true).unwrap();
        assert!(s.chain.iter().all(|b| !b.kind().needs_onnx_graph()));
        assert!(s.skipped.iter().any(|(k, _)| *k == BackendKind::Ort));
    }

    #[test]
    fn explicit_cpu_is_cpu_only() {
        let s = select(BackendKind::Cpu, true, true).unwrap();
        assert_eq!(s.chain.len(), 1);
        assert_eq!(s.chain[0].kind(), BackendKind::Cpu);
    }
}
