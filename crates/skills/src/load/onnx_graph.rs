//! Finding a model's ONNX graph (`onnx/model.onnx`, the layout optimum and
//! sentence-transformers publish) through the loader, only when an ONNX
//! Runtime backend could use it: a Hub model's graph is a large download.

use crate::SkillError;
use ipfs_accelerate_backends::{
    Backend, BackendError, BackendKind, OnnxRuntimeCpu, OrtExecutor, OrtSession,
};
use ipfs_accelerate_loader::{Loader, ModelRef, ResolvedFile};

/// Where the graph lives inside a model.
pub const ONNX_GRAPH: &str = "onnx/model.onnx";

/// The model's ONNX graph when `requested` may run it: asked for by name, or
/// `auto` with ONNX Runtime loadable here. `None` when the model has none
/// or no ONNX backend is in play.
pub(crate) fn onnx_graph(
    loader: &Loader,
    model: &ModelRef,
    requested: BackendKind,
) -> Result<Option<ResolvedFile>, SkillError> {
    if !onnx_wanted(requested) {
        return Ok(None);
    }
    Ok(loader.optional_file(model, ONNX_GRAPH)?)
}

/// Whether `requested` may run an ONNX graph: asked for by name, or `auto`
/// with ONNX Runtime loadable here.
fn onnx_wanted(requested: BackendKind) -> bool {
    requested.needs_onnx_graph()
        || (requested == BackendKind::Auto && OnnxRuntimeCpu.probe().available)
}

/// [`onnx_graph`] for a model exported as several graphs (optimum's
/// seq2seq export: encoder, decoder, decoder with past): all of `files`, in
/// order, when the model has every one of them and `requested` may run
/// them; `None` otherwise.
pub(crate) fn onnx_graphs(
    loader: &Loader,
    model: &ModelRef,
    requested: BackendKind,
    files: &[&str],
) -> Result<Option<Vec<ResolvedFile>>, SkillError> {
    if !onnx_wanted(requested) {
        return Ok(None);
    }
    let mut found = Vec::with_capacity(files.len());
    for file in files {
        match loader.optional_file(model, file)? {
            Some(resolved) => found.push(resolved),
            None => return Ok(None),
        }
    }
    Ok(Some(found))
}

/// Opens `graph` on `executor` (a session per model load).
pub(crate) fn open_session(
    executor: &OrtExecutor,
    graph: Option<&ResolvedFile>,
) -> Result<OrtSession, SkillError> {
    let graph = graph.ok_or_else(|| BackendError::Unsupported {
        kind: executor.kind(),
        why: format!("the model has no ONNX graph ({ONNX_GRAPH})"),
    })?;
    Ok(executor.session(&graph.path)?)
}
