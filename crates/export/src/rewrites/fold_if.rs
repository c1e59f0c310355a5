//! Control-flow rewriting: an `If` whose condition is known at rewrite time
//! is replaced by the nodes of the branch it would take. optimum's merged
//! decoders (`decoder_model_merged.onnx`) choose between "with past" and
//! "without past" on an input, `use_cache_branch`; binding it folds the
//! graph into one straight-line graph that runtimes without control flow
//! (and OpenVINO's static pipelines) run, and that ORT optimises across.

use super::{fresh_name, graph_mut, names_in, prune};
use crate::proto::{data_type, GraphProto, ModelProto, NodeProto, TensorProto};
use crate::OnnxError;
use std::collections::{HashMap, HashSet};

const NAME: &str = "fold_constant_if";

/// The boolean a one-element tensor holds, if it is one.
fn tensor_bool(t: &TensorProto) -> Option<bool> {
    let one = t.dims.iter().product::<i64>() == 1;
    if !one
        || !matches!(
            t.data_type,
            data_type::BOOL | data_type::INT64 | data_type::INT32
        )
    {
        return None;
    }
    if !t.raw_data.is_empty() {
        return Some(t.raw_data.iter().any(|b| *b != 0));
    }
    t.int32_data
        .first()
        .map(|v| *v != 0)
        .or_else(|| t.int64_data.first().map(|v| *v != 0))
}

/// Conditions known in `graph`: bound inputs, initializers and `Constant`
/// outputs.
fn known_conditions(graph: &GraphProto) -> HashMap<String, bool> {
    let mut known = HashMap::new();
    for t in &graph.initializer {
        if let Some(b) = tensor_bool(t) {
            known.insert(t.name.clone(), b);
        }
    }
    for node in &graph.node {
        if node.op_type == "Constant" && node.domain.is_empty() {
            if let (Some(out), Some(t)) = (
                node.output.first(),
                node.attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref()),
            ) {
                if let Some(b) = tensor_bool(t) {
                    known.insert(out.clone(), b);
                }
            }
        }
    }
    known
}

/// Renames every use of `renames`' keys in a subgraph (its nodes read outer
/// values by name).
fn rename_uses(graph: &mut GraphProto, renames: &HashMap<String, String>) {
    for node in &mut graph.node {
        rename_node(node, renames);
    }
    for out in &mut graph.output {
        if let Some(n) = renames.get(&out.name) {
            out.name.clone_from(n);
        }
    }
}

fn rename_node(node: &mut NodeProto, renames: &HashMap<String, String>) {
    for name in node.input.iter_mut().chain(node.output.iter_mut()) {
        if let Some(n) = renames.get(name) {
            name.clone_from(n);
        }
    }
    for attr in &mut node.attribute {
        for g in attr.g.iter_mut().chain(attr.graphs.iter_mut()) {
            rename_uses(g, renames);
        }
    }
}

/// Binds graph inputs to boolean values (they become initializers), folds
/// every `If` whose condition is then known — repeatedly, so `If`s inside a
/// taken branch fold too — and prunes what no longer feeds an output.
/// Returns how many `If` nodes were folded.
pub fn fold_constant_if(
    model: &mut ModelProto,
    bindings: &[(&str, bool)],
) -> Result<usize, OnnxError> {
    let graph = graph_mut(model, NAME)?;
    for (input, value) in bindings {
        let at = graph
            .input
            .iter()
            .position(|i| i.name == *input)
            .ok_or_else(|| OnnxError::Rewrite {
                rewrite: NAME.to_owned(),
                reason: format!("the graph has no input '{input}' to bind"),
            })?;
        graph.input.remove(at);
        graph.initializer.push(TensorProto {
            name: (*input).to_owned(),
            dims: vec![1],
            data_type: data_type::BOOL,
            raw_data: vec![u8::from(*value)],
            ..TensorProto::default()
        });
    }
    let mut folded = 0;
    loop {
        let known = known_conditions(graph);
        let Some(at) = graph.node.iter().position(|n| {
            n.op_type == "If"
                && n.domain.is_empty()
                && n.input.first().is_some_and(|c| known.contains_key(c))
        }) else {
            break;
        };
        let node = graph.node.remove(at);
        let cond = node.input.first().and_then(|c| known.get(c)).copied() == Some(true);
        let branch_name = if cond { "then_branch" } else { "else_branch" };
        let mut branch = node
            .attribute
            .iter()
            .find(|a| a.name == branch_name)
            .and_then(|a| a.g.clone())
            .ok_or_else(|| OnnxError::Rewrite {
                rewrite: NAME.to_owned(),
                reason: format!("If node '{}' has no {branch_name}", node.name),
            })?;
        if branch.output.len() != node.output.len() {
            return Err(OnnxError::Rewrite {
                rewrite: NAME.to_owned(),
                reason: format!(
                    "If node '{}': {branch_name} has {} outputs, the node {}",
                    node.name,
                    branch.output.len(),
                    node.output.len()
                ),
            });
        }
        // Values the branch defines must not clash with the outer graph's.
        let mut taken = names_in(graph);
        // The If's own outputs are about to be defined by Identity nodes.
        taken.extend(node.output.iter().cloned());
        taken.extend(graph.output.iter().map(|o| o.name.clone()));
        let mut defined: HashSet<String> =
            branch.initializer.iter().map(|t| t.name.clone()).collect();
        for n in &branch.node {
            defined.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        let mut renames = HashMap::new();
        for name in &defined {
            if taken.contains(name) {
                let fresh = fresh_name(&mut taken, &format!("{}/{name}", node.name));
                renames.insert(name.clone(), fresh);
            } else {
                taken.insert(name.clone());
            }
        }
        rename_uses(&mut branch, &renames);
        for t in &mut branch.initializer {
            if let Some(n) = renames.get(&t.name) {
                t.name.clone_from(n);
            }
        }
        for v in &mut branch.value_info {
            if let Some(n) = renames.get(&v.name) {
                v.name.clone_from(n);
            }
        }
        for n in &mut branch.node {
            if taken.contains(&n.name) && !n.name.is_empty() {
                n.name = fresh_name(&mut taken, &n.name);
            } else {
                taken.insert(n.name.clone());
            }
        }
        let mut inlined = branch.node;
        for (inner, outer) in branch.output.iter().zip(&node.output) {
            if outer.is_empty() {
                continue;
            }
            inlined.push(NodeProto {
                input: vec![inner.name.clone()],
                output: vec![outer.clone()],
                name: fresh_name(&mut taken, &format!("{}/Identity_{outer}", node.name)),
                op_type: "Identity".to_owned(),
                ..NodeProto::default()
            });
        }
        tracing::debug!(node = %node.name, branch = branch_name, nodes = inlined.len(), "folded If");
        graph.node.splice(at..at, inlined);
        graph.initializer.extend(branch.initializer);
        graph.value_info.extend(branch.value_info);
        folded += 1;
    }
    prune(model)?;
    Ok(folded)
}
