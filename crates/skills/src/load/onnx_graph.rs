//! Finding a model's ONNX graph (`onnx/model.onnx`, the layout optimum and
//! sentence-transformers publish) through the loader, only when an ONNX
//! Runtime backend could use it (a Hub model's graph is a large download),
//! or exporting one on first use when the model ships none.

use crate::SkillError;
use ipfs_accelerate_backends::{
    registry, Backend, BackendError, BackendKind, OnnxRuntimeCpu, OrtExecutor, OrtSession,
};
use ipfs_accelerate_export::{cached_export, exportable_graphs, split_merged_decoder, OnnxError};
use ipfs_accelerate_loader::{Loader, ModelRef, ResolvedFile};

/// Where the graph lives inside a model.
pub const ONNX_GRAPH: &str = "onnx/model.onnx";

/// The model's ONNX graph when `requested` may run it: asked for by name, or
/// `auto` with ONNX Runtime loadable here. The model's own
/// `onnx/model.onnx`, else one exported on first use ([`onnx_graphs`]).
/// `None` when there is neither or no ONNX backend is in play.
pub(crate) fn onnx_graph(
    loader: &Loader,
    model: &ModelRef,
    requested: BackendKind,
) -> Result<Option<ResolvedFile>, SkillError> {
    Ok(onnx_graphs(loader, model, requested, &[ONNX_GRAPH])?.and_then(|mut g| g.pop()))
}

/// Whether `requested` may run an ONNX graph: asked for by name, or `auto`
/// with ONNX Runtime loadable here.
fn onnx_wanted(requested: BackendKind) -> bool {
    requested.needs_onnx_graph()
        || (requested == BackendKind::Auto && OnnxRuntimeCpu.probe().available)
}

/// The ONNX graph `files` of a model (`onnx/model.onnx`, or optimum's
/// seq2seq set: encoder, decoder, decoder with past), in order, when
/// `requested` may run them: the model's own when it ships every one,
/// else the graphs our exporter makes from its weights, exported once and
/// then served from the cache (docs/onnx-export.md, "Export on first
/// use"). `None` when no ONNX backend is in play, the loader does not
/// export (`--no-export`), or the `model_type` has no exporter. A failed
/// export is an error when an ONNX backend was asked for by name; for
/// `auto` it is logged and candle runs.
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
            None => break,
        }
    }
    if found.len() == files.len() {
        return Ok(Some(found));
    }
    // optimum's seq2seq layout may ship the decoder only merged.
    let merged = merged_decoder(loader, model, files, &found)?;
    if merged.is_none() && !loader.export_enabled() {
        return Ok(None);
    }
    // Making graphs is only worth its time for a backend that can run
    // here; asked for by name, the missing runtime is the answer.
    if requested != BackendKind::Auto {
        if let Some(backend) = registry().into_iter().find(|b| b.kind() == requested) {
            let info = backend.probe();
            if !info.available {
                return Err(BackendError::Unavailable {
                    kind: requested,
                    detail: info.detail,
                }
                .into());
            }
        }
    }
    let failed = |source: OnnxError| SkillError::Export {
        model: model.to_string(),
        source,
    };
    // A failure is the answer when an ONNX backend was asked for by name;
    // under `auto` it is reported and candle runs.
    let or_candle = |err: OnnxError| {
        if requested == BackendKind::Auto {
            tracing::warn!("not running on ONNX Runtime: {}", failed(err));
            Ok(None)
        } else {
            Err(failed(err))
        }
    };
    if let Some(merged) = merged {
        return match split_merged_decoder(loader, model, &merged) {
            Ok(split) => {
                let mut graphs = vec![found[0].clone()];
                graphs.extend(split.graphs);
                Ok(Some(graphs))
            }
            Err(err) => or_candle(err),
        };
    }
    // Only when the exporter makes the layout this skill runs.
    let layout = match exportable_graphs(loader, model) {
        Ok(layout) => layout,
        Err(err) => return or_candle(err),
    };
    let same = |names: &[&str]| {
        names.len() == files.len()
            && names
                .iter()
                .zip(files)
                .all(|(n, f)| f.strip_prefix("onnx/") == Some(*n))
    };
    if !layout.is_some_and(same) {
        return Ok(None);
    }
    // Under `auto`, an export that failed before is not tried again on
    // every load; asked for by name, it is.
    match cached_export(loader, model, requested != BackendKind::Auto) {
        Ok(export) => Ok(Some(export.graphs)),
        Err(err) => or_candle(err),
    }
}

/// [`onnx_graphs`] for a skill whose ONNX path needs several graph
/// `files`: the graphs, added to `read` for the answer's `files`. Asked for
/// an ONNX backend by name, a model without them is [`no_graphs`] (the
/// backend chain only knows the single-graph layout's name).
pub(crate) fn graph_set(
    loader: &Loader,
    model: &ModelRef,
    backend: BackendKind,
    files: &[&str],
    read: &mut Vec<ResolvedFile>,
) -> Result<Option<Vec<ResolvedFile>>, SkillError> {
    let graphs = onnx_graphs(loader, model, backend, files)?;
    read.extend(graphs.iter().flatten().cloned());
    if graphs.is_none() && backend.needs_onnx_graph() {
        return Err(no_graphs(backend, files));
    }
    Ok(graphs)
}

/// A model without the graph `files` (and none made) on backend `kind`:
/// which files are missing.
pub(crate) fn no_graphs(kind: BackendKind, files: &[&str]) -> SkillError {
    BackendError::Unsupported {
        kind,
        why: format!("the model has no ONNX graphs ({})", files.join(", ")),
    }
    .into()
}

/// The merged decoder optimum ships beside (or instead of) the two
/// decoder graphs.
const MERGED_DECODER: &str = "onnx/decoder_model_merged.onnx";

/// For the seq2seq layout (`files` = encoder, decoder, decoder with past)
/// when the model ships the encoder and `decoder_model_merged.onnx` but not
/// the two decoders: the merged decoder, which `split_merged_decoder` turns
/// into the two (cached like an export).
fn merged_decoder(
    loader: &Loader,
    model: &ModelRef,
    files: &[&str],
    found: &[ResolvedFile],
) -> Result<Option<ResolvedFile>, SkillError> {
    let [encoder, _, _] = files else {
        return Ok(None);
    };
    if found.len() != 1 || found[0].file != *encoder {
        return Ok(None);
    }
    Ok(loader.optional_file(model, MERGED_DECODER)?)
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
