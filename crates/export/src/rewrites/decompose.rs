//! Emitting primitive ops in place of one node: fresh names, and
//! `ReduceMean` in the form the model's opset wants (axes an attribute
//! before opset 18, an input from 18).

use super::fresh_name;
use crate::builder::{attr_int, attr_ints, tensor_f32, tensor_i64};
use crate::proto::{AttributeProto, NodeProto, TensorProto};
use std::collections::HashSet;

/// Nodes and initializers replacing one node.
pub(super) struct Emitter<'a> {
    pub taken: &'a mut HashSet<String>,
    pub prefix: String,
    pub opset: i64,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
}

impl Emitter<'_> {
    /// A node with one output named `output` (or a fresh one).
    pub fn op(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        output: Option<&str>,
    ) -> String {
        let name = fresh_name(self.taken, &format!("{}/{op_type}", self.prefix));
        let out = match output {
            Some(o) => o.to_owned(),
            None => fresh_name(self.taken, &format!("{name}_output")),
        };
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![out.clone()],
            name,
            op_type: op_type.to_owned(),
            attribute: attrs,
            ..NodeProto::default()
        });
        out
    }

    /// A 0-D float32 initializer.
    pub fn float(&mut self, value: f32) -> String {
        let name = fresh_name(self.taken, &format!("{}/const", self.prefix));
        self.initializers.push(tensor_f32(&name, &[], &[value]));
        name
    }

    /// `ReduceMean` over the last axis, keeping it.
    pub fn mean_last(&mut self, x: &str) -> String {
        if self.opset >= 18 {
            let name = fresh_name(self.taken, &format!("{}/axes", self.prefix));
            self.initializers.push(tensor_i64(&name, &[1], &[-1]));
            self.op(
                "ReduceMean",
                &[x, &name],
                vec![attr_int("keepdims", 1)],
                None,
            )
        } else {
            self.op(
                "ReduceMean",
                &[x],
                vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
                None,
            )
        }
    }
}
