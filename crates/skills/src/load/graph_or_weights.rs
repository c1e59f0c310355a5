//! The load sequence of every skill with an ONNX path: the model's ONNX
//! graph on ONNX Runtime / OpenVINO when the backend chain reaches one, else
//! its safetensors weights on candle. An ONNX run on a graph the model
//! ships never fetches the weights; one on a graph exported on first use
//! reads them (their hashes key the cached export). The files read are
//! returned for the answer's `files`.

use super::backend_chain::load_on_chain_with_onnx;
use super::onnx_graph::{onnx_graph, open_session};
use super::weights::var_builder;
use super::ModelFiles;
use crate::SkillError;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ipfs_accelerate_backends::{BackendKind, OrtSession};
use ipfs_accelerate_loader::{FileKind, ResolvedFile};

/// Loads the model of `files` for
/// `backend`: `from_graph` gets a session on its `onnx/model.onnx`,
/// `from_weights` a `VarBuilder` over its (patched) f32 weights and the
/// device. Returns the model, the backend that holds it, and the graph or
/// weight files read.
pub(crate) fn load_graph_or_weights<T>(
    files: &ModelFiles<'_>,
    backend: BackendKind,
    mut from_graph: impl FnMut(OrtSession) -> Result<T, SkillError>,
    mut from_weights: impl FnMut(VarBuilder<'static>, &Device) -> Result<T, SkillError>,
) -> Result<(T, BackendKind, Vec<ResolvedFile>), SkillError> {
    let (loader, model, name, config) = (files.loader, files.model, &files.name, &files.config);
    let graph = onnx_graph(loader, model, backend)?;
    let ((loaded, weight_files), kind) = load_on_chain_with_onnx(
        backend,
        graph.is_some(),
        |executor| {
            Ok((
                from_graph(open_session(executor, graph.as_ref())?)?,
                Vec::new(),
            ))
        },
        |device| {
            let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
            let vb = var_builder(loader, name, config, &weight_files, DType::F32, device)?;
            Ok((from_weights(vb, device)?, weight_files))
        },
    )?;
    let mut files: Vec<ResolvedFile> = graph.into_iter().collect();
    files.extend(weight_files);
    Ok((loaded, kind, files))
}
