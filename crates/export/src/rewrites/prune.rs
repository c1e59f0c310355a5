//! Dead-code elimination: nodes whose outputs nothing needs, and
//! initializers nothing reads (left behind by [`super::fold_constant_if`]).

use super::graph_mut;
use crate::proto::{GraphProto, ModelProto, NodeProto};
use crate::OnnxError;
use std::collections::HashSet;

/// Every name a node reads, including what its subgraphs read from the
/// outer scope.
fn reads(node: &NodeProto, out: &mut HashSet<String>) {
    out.extend(node.input.iter().filter(|n| !n.is_empty()).cloned());
    for attr in &node.attribute {
        for g in attr.g.iter().chain(attr.graphs.iter()) {
            graph_reads(g, out);
        }
    }
}

fn graph_reads(g: &GraphProto, out: &mut HashSet<String>) {
    for node in &g.node {
        reads(node, out);
    }
    out.extend(g.output.iter().map(|o| o.name.clone()));
}

/// Removes dead nodes and unused initializers; returns how many of each.
pub fn prune(model: &mut ModelProto) -> Result<(usize, usize), OnnxError> {
    let graph = graph_mut(model, "prune")?;
    let mut needed: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut live = vec![false; graph.node.len()];
    // Nodes are topologically sorted: one backward pass finds the live ones.
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o)) {
            live[i] = true;
            reads(node, &mut needed);
        }
    }
    let before_nodes = graph.node.len();
    let mut keep = live.iter();
    graph.node.retain(|_| keep.next().copied().unwrap_or(true));
    let before_init = graph.initializer.len();
    graph.initializer.retain(|t| needed.contains(&t.name));
    graph.value_info.retain(|v| needed.contains(&v.name));
    Ok((
        before_nodes - graph.node.len(),
        before_init - graph.initializer.len(),
    ))
}

/// Removes graph inputs that no node reads and no output is (what a folded
/// `If` leaves behind: a merged decoder's past inputs in its first-step
/// branch, the encoder's output in its cached branch), so a caller need
/// not feed them. Returns their names.
pub fn drop_unused_inputs(model: &mut ModelProto) -> Result<Vec<String>, OnnxError> {
    let graph = graph_mut(model, "drop_unused_inputs")?;
    let mut needed = HashSet::new();
    graph_reads(graph, &mut needed);
    let mut dropped = Vec::new();
    graph.input.retain(|i| {
        let keep = needed.contains(&i.name);
        if !keep {
            dropped.push(i.name.clone());
        }
        keep
    });
    Ok(dropped)
}
