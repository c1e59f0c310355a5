//! A small graph builder: nodes with readable, unique names, initializers,
//! typed inputs and outputs with named (dynamic) axes.

use super::proto::{
    attribute_type, data_type, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use std::collections::HashMap;

/// The opset the exporter writes: 17 has `LayerNormalization` and keeps
/// `ReduceMean`'s axes an attribute; ONNX Runtime 1.31 and OpenVINO 2025
/// both run it.
pub const EXPORT_OPSET: i64 = 17;
/// IR version 8 goes with opset 17 (onnx 1.13).
pub const EXPORT_IR_VERSION: i64 = 8;

/// One axis of a declared input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A dynamic size, named (`batch_size`, `sequence_length`).
    Named(String),
}

impl Dim {
    /// A named dynamic axis.
    pub fn named(name: &str) -> Self {
        Self::Named(name.to_owned())
    }
}

/// A `ValueInfoProto` of a tensor with these element type and axes.
pub fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                Dim::Named(p) => tensor_shape_proto::dimension::Value::DimParam(p.clone()),
            }),
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: String::new(),
        }),
        ..ValueInfoProto::default()
    }
}

/// An attribute of this name and type, its value not yet set.
fn attr(name: &str, kind: i32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: kind,
        ..AttributeProto::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        i,
        ..attr(name, attribute_type::INT)
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: ints.to_vec(),
        ..attr(name, attribute_type::INTS)
    }
}

/// A float attribute.
pub fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        f,
        ..attr(name, attribute_type::FLOAT)
    }
}

/// A string attribute.
pub fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        s: value.as_bytes().to_vec(),
        ..attr(name, attribute_type::STRING)
    }
}

/// A tensor attribute (for `Constant`, `ConstantOfShape`).
pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attr(name, attribute_type::TENSOR)
    }
}

/// A tensor of this element type whose values are `raw_data`.
fn tensor_raw(name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type,
        raw_data,
        ..TensorProto::default()
    }
}

/// A float32 tensor, stored as raw little-endian bytes.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_raw(name, dims, data_type::FLOAT, raw)
}

/// An int64 tensor, stored as raw little-endian bytes.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_raw(name, dims, data_type::INT64, raw)
}

/// Builds one graph. Node names are `{scope}/{Op}_{n}` so a node can be
/// found from an error message; each node's output is named after it.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    scope: String,
    counter: usize,
    constants: HashMap<String, String>,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the following nodes `{scope}/...` (e.g. `/layers.0/attn`).
    pub fn set_scope(&mut self, scope: impl Into<String>) {
        self.scope = scope.into();
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem_type, dims));
        name.to_owned()
    }

    /// Declares `value` as graph output `name` (through an `Identity` when
    /// the value has another name).
    pub fn output(&mut self, value: &str, name: &str, elem_type: i32, dims: &[Dim]) {
        if value != name {
            self.nodes.push(NodeProto {
                input: vec![value.to_owned()],
                output: vec![name.to_owned()],
                name: format!("{}/Identity_{name}", self.scope),
                op_type: "Identity".to_owned(),
                ..NodeProto::default()
            });
        }
        self.outputs.push(value_info(name, elem_type, dims));
    }

    /// Adds a float32 initializer.
    pub fn weight(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.initializers.push(tensor_f32(name, &dims, data));
        name.to_owned()
    }

    /// A 1-D int64 constant (shared between uses).
    pub fn ints(&mut self, values: &[i64]) -> String {
        self.constant_i64(values, &[values.len() as i64])
    }

    /// A 0-D int64 constant.
    pub fn int(&mut self, value: i64) -> String {
        self.constant_i64(&[value], &[])
    }

    fn constant_i64(&mut self, values: &[i64], dims: &[i64]) -> String {
        let key = format!("i64{dims:?}{values:?}");
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = format!("const_i64_{}", self.constants.len());
        self.initializers.push(tensor_i64(&name, dims, values));
        self.constants.insert(key, name.clone());
        name
    }

    /// A 0-D float32 constant (shared between uses).
    pub fn float(&mut self, value: f32) -> String {
        let key = format!("f32[]{:08x}", value.to_bits());
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = format!("const_f32_{}", self.constants.len());
        self.initializers.push(tensor_f32(&name, &[], &[value]));
        self.constants.insert(key, name.clone());
        name
    }

    /// Adds a node with one output and returns the output's name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op_n(op_type, inputs, attrs, 1).remove(0)
    }

    /// Adds a node with `n` outputs and returns their names.
    pub fn op_n(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        n: usize,
    ) -> Vec<String> {
        self.counter += 1;
        let name = format!("{}/{op_type}_{}", self.scope, self.counter);
        let output: Vec<String> = if n == 1 {
            vec![format!("{name}_output")]
        } else {
            (0..n).map(|i| format!("{name}_output_{i}")).collect()
        };
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: output.clone(),
            name,
            op_type: op_type.to_owned(),
            attribute: attrs,
            ..NodeProto::default()
        });
        output
    }

    /// The finished model at [`EXPORT_OPSET`].
    pub fn finish(self, graph_name: &str, doc: &str) -> ModelProto {
        ModelProto {
            ir_version: EXPORT_IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: EXPORT_OPSET,
            }],
            producer_name: "ipfs-accelerate".to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            doc_string: doc.to_owned(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: graph_name.to_owned(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
    }
}
