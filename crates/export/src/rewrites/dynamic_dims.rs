//! Declared dynamic axes, and putting them back where a size was pinned:
//! shape inference, a static-shape export or a careless rewrite writes
//! `dim_value: 1` where the graph declared `dim_param: batch_size`, and ONNX
//! Runtime then refuses any other batch size.

use super::graph_mut;
use crate::proto::{
    tensor_shape_proto::dimension::Value as DimValue, type_proto, GraphProto, ModelProto,
    ValueInfoProto,
};
use crate::OnnxError;
use std::collections::BTreeMap;

/// Which axes of which tensors are dynamic, and their names:
/// tensor -> axis -> `dim_param`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicAxes(pub BTreeMap<String, BTreeMap<usize, String>>);

impl DynamicAxes {
    /// Every `dim_param` the model declares on inputs, outputs and
    /// `value_info`.
    pub fn declared_in(model: &ModelProto) -> Self {
        let mut axes = Self::default();
        if let Some(graph) = &model.graph {
            for v in all_values(graph) {
                for (axis, dim) in dims(v).iter().enumerate() {
                    if let Some(DimValue::DimParam(p)) = &dim.value {
                        axes.insert(&v.name, axis, p);
                    }
                }
            }
        }
        axes
    }

    /// Declares `tensor`'s `axis` dynamic, named `param`.
    pub fn insert(&mut self, tensor: &str, axis: usize, param: &str) {
        self.0
            .entry(tensor.to_owned())
            .or_default()
            .insert(axis, param.to_owned());
    }

    /// Declared axes of one tensor.
    pub fn of(&self, tensor: &str) -> Option<&BTreeMap<usize, String>> {
        self.0.get(tensor)
    }
}

fn all_values(graph: &GraphProto) -> impl Iterator<Item = &ValueInfoProto> {
    graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
}

pub(super) fn dims(v: &ValueInfoProto) -> &[crate::proto::tensor_shape_proto::Dimension] {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            t.shape.as_ref().map_or(&[], |s| s.dim.as_slice())
        }
        _ => &[],
    }
}

fn dims_mut(
    v: &mut ValueInfoProto,
) -> Option<&mut Vec<crate::proto::tensor_shape_proto::Dimension>> {
    match v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        Some(type_proto::Value::TensorType(t)) => t.shape.as_mut().map(|s| &mut s.dim),
        _ => None,
    }
}

/// Gives every declared axis that now has a fixed size (or no size) its
/// `dim_param` back, in inputs, outputs and `value_info`; returns how many
/// axes changed.
pub fn restore_dynamic_dims(
    model: &mut ModelProto,
    declared: &DynamicAxes,
) -> Result<usize, OnnxError> {
    let graph = graph_mut(model, "restore_dynamic_dims")?;
    let mut changed = 0;
    for v in graph
        .input
        .iter_mut()
        .chain(graph.output.iter_mut())
        .chain(graph.value_info.iter_mut())
    {
        let Some(axes) = declared.of(&v.name) else {
            continue;
        };
        let name = v.name.clone();
        let Some(dims) = dims_mut(v) else {
            continue;
        };
        for (&axis, param) in axes {
            let Some(dim) = dims.get_mut(axis) else {
                continue;
            };
            if !matches!(&dim.value, Some(DimValue::DimParam(p)) if p == param) {
                tracing::debug!(tensor = %name, axis, param = %param, "dynamic axis restored");
                dim.value = Some(DimValue::DimParam(param.clone()));
                changed += 1;
            }
        }
    }
    Ok(changed)
}
