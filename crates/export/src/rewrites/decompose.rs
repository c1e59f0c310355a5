//! Emitting primitive ops in place of one node: fresh names, and
//! `ReduceMean` in the form the model's opset wants (axes an attribute
//! before opset 18, an input from 18); and the walk over the graph that puts
//! them in the node's place, shared by every decomposition.

use super::{fresh_name, graph_mut, names_in, opset_version};
use crate::builder::{attr_int, attr_ints, tensor_f32, tensor_i64};
use crate::proto::{AttributeProto, ModelProto, NodeProto, TensorProto};
use crate::OnnxError;
use std::collections::HashSet;

/// Offers every node of the main graph to `replace`, with an [`Emitter`]
/// named after the node. When `replace` returns true, the nodes and
/// initializers it emitted stand in the node's place; when false (it emitted
/// nothing), the node stays. Returns how many nodes were replaced; the
/// error names `rewrite` when the model has no graph.
pub(super) fn replace_nodes(
    model: &mut ModelProto,
    rewrite: &str,
    mut replace: impl FnMut(&NodeProto, &mut Emitter<'_>) -> Result<bool, OnnxError>,
) -> Result<usize, OnnxError> {
    let opset = opset_version(model);
    let graph = graph_mut(model, rewrite)?;
    let mut taken = names_in(graph);
    let mut out: Vec<NodeProto> = Vec::with_capacity(graph.node.len());
    let mut initializers = Vec::new();
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        let mut e = Emitter {
            taken: &mut taken,
            prefix: node.name.clone(),
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
        };
        if replace(&node, &mut e)? {
            out.extend(e.nodes);
            initializers.extend(e.initializers);
            count += 1;
        } else {
            out.push(node);
        }
    }
    graph.node = out;
    graph.initializer.extend(initializers);
    Ok(count)
}

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
