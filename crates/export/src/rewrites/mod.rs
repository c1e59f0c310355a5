//! Graph rewrites so ONNX Runtime and OpenVINO run graphs they would reject
//! or run slowly, and the `stop_if_static` check (docs/onnx-export.md):
//!
//! - [`fold_constant_if`]: an `If` whose condition is known (a constant, an
//!   initializer, or an input bound to a value) becomes its branch's nodes.
//! - [`decompose_layer_norm`] / [`decompose_gelu`]: ops a runtime lacks
//!   (`LayerNormalization` before opset 17, `Gelu` before opset 20) as
//!   primitive ops.
//! - [`restore_dynamic_dims`]: axes declared dynamic that became static in
//!   inputs, outputs or `value_info` get their `dim_param` back.
//! - [`stop_if_static`] / [`apply_checked`]: fail, naming the node, when a
//!   dimension declared dynamic became static.
//! - [`prune`]: drops nodes and initializers nothing uses.

mod decompose;
mod dynamic_dims;
mod fold_if;
mod gelu;
mod layer_norm;
mod prune;
mod stop_if_static;

pub use dynamic_dims::{restore_dynamic_dims, DynamicAxes};
pub use fold_if::fold_constant_if;
pub use gelu::decompose_gelu;
pub use layer_norm::decompose_layer_norm;
pub use prune::{drop_unused_inputs, prune};
pub use stop_if_static::{apply_checked, stop_if_static};

use super::proto::{GraphProto, ModelProto};
use super::OnnxError;

/// The default-domain opset the model imports (0 when it imports none).
pub fn opset_version(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version)
}

/// The main graph, or an error naming the rewrite.
fn graph_mut<'a>(
    model: &'a mut ModelProto,
    rewrite: &str,
) -> Result<&'a mut GraphProto, OnnxError> {
    model.graph.as_mut().ok_or_else(|| OnnxError::Rewrite {
        rewrite: rewrite.to_owned(),
        reason: "the model has no graph".to_owned(),
    })
}

/// A name not yet used in `taken`, built from `base`.
fn fresh_name(taken: &mut std::collections::HashSet<String>, base: &str) -> String {
    let mut name = base.to_owned();
    let mut n = 0;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}__{n}");
    }
    taken.insert(name.clone());
    name
}

/// Every value name a graph defines or uses (inputs, initializers, node
/// inputs and outputs), for picking fresh names.
fn names_in(graph: &GraphProto) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    names.extend(graph.input.iter().map(|v| v.name.clone()));
    names.extend(graph.initializer.iter().map(|t| t.name.clone()));
    for node in &graph.node {
        names.extend(node.input.iter().cloned());
        names.extend(node.output.iter().cloned());
        names.insert(node.name.clone());
    }
    names
}

/// The graph rewrites as `patch list` rows: applied by the ONNX code paths
/// (export, loading a graph for a runtime) to a graph, not to a model's
/// files, so they always "apply" where an ONNX graph is involved.
pub fn infos() -> Vec<ipfs_accelerate_patches::PatchInfo> {
    use ipfs_accelerate_patches::{PatchInfo, PatchKind, VersionGate};
    let row = |name: &str, kind, gate: &str, description: &str| PatchInfo {
        name: format!("onnx.{name}"),
        kind,
        target: "ONNX graph".to_owned(),
        gate: gate.parse().unwrap_or_else(|_| VersionGate::any()),
        description: description.to_owned(),
        source: "docs/onnx-export.md".to_owned(),
    };
    vec![
        row(
            "fold_constant_if",
            PatchKind::ControlFlowRewrite,
            "",
            "replaces an If whose condition is constant by the branch it takes",
        ),
        row(
            "decompose_layer_norm",
            PatchKind::ModelRewrite,
            "",
            "LayerNormalization as ReduceMean/Sub/Mul/Sqrt/Div for runtimes without it",
        ),
        row(
            "decompose_gelu",
            PatchKind::ModelRewrite,
            "onnx_opset >= 20",
            "the opset-20 Gelu op as Erf (or Tanh) arithmetic",
        ),
        row(
            "restore_dynamic_dims",
            PatchKind::ModelRewrite,
            "",
            "declared-dynamic axes that became fixed sizes get their names back",
        ),
    ]
}
