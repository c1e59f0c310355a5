//! `stop_if_static`: fail, naming the node, when a dimension declared
//! dynamic became static — the export or rewrite bug that otherwise shows
//! up later as a runtime refusing the second batch size it sees.

use super::dynamic_dims::{dims, DynamicAxes};
use crate::proto::{tensor_shape_proto::dimension::Value as DimValue, ModelProto};
use crate::{OnnxError, StaticDimension};

/// Checks every declared axis (see [`DynamicAxes`]) of the model's inputs,
/// outputs and `value_info`: a fixed size there is an error naming the
/// node that produces the tensor.
pub fn stop_if_static(model: &ModelProto, declared: &DynamicAxes) -> Result<(), OnnxError> {
    check(model, declared, "")
}

fn check(model: &ModelProto, declared: &DynamicAxes, after: &str) -> Result<(), OnnxError> {
    let Some(graph) = &model.graph else {
        return Ok(());
    };
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        let Some(axes) = declared.of(&v.name) else {
            continue;
        };
        let dims = dims(v);
        for (&axis, param) in axes {
            if let Some(DimValue::DimValue(value)) = dims.get(axis).and_then(|d| d.value.as_ref()) {
                let producer = graph
                    .node
                    .iter()
                    .find(|n| n.output.iter().any(|o| o == &v.name));
                let (node, op_type) = match producer {
                    Some(n) => (n.name.clone(), n.op_type.clone()),
                    None => ("<graph input>".to_owned(), "input".to_owned()),
                };
                return Err(OnnxError::StaticDimension(Box::new(StaticDimension {
                    node,
                    op_type,
                    tensor: v.name.clone(),
                    axis,
                    param: param.clone(),
                    value: *value,
                    after: after.to_owned(),
                })));
            }
        }
    }
    Ok(())
}

/// Runs `rewrite` on `model`; with `stop_if_static`, the axes the model
/// declared dynamic before must still be dynamic after, or the error names
/// the rewrite and the node.
pub fn apply_checked<T>(
    model: &mut ModelProto,
    name: &str,
    stop_if_static: bool,
    rewrite: impl FnOnce(&mut ModelProto) -> Result<T, OnnxError>,
) -> Result<T, OnnxError> {
    let declared = stop_if_static.then(|| DynamicAxes::declared_in(model));
    let out = rewrite(model)?;
    if let Some(declared) = declared {
        check(model, &declared, &format!(" after rewrite {name}"))?;
    }
    tracing::debug!(rewrite = name, "applied");
    Ok(out)
}
