//! `LayerNormalization` (opset 17) as `ReduceMean`/`Sub`/`Mul`/`Sqrt`/`Div`,
//! for runtimes or opsets that lack it (ONNX Runtime builds for opset ≤ 16,
//! older OpenVINO front ends), computed as the op's definition says.

use super::decompose::Emitter;
use super::{graph_mut, names_in, opset_version};
use crate::proto::{ModelProto, NodeProto};
use crate::OnnxError;

const NAME: &str = "decompose_layer_norm";

/// Replaces every `LayerNormalization` over the last axis whose `Mean` /
/// `InvStdDev` outputs are unused; returns how many. Float32 graphs only
/// (the epsilon constant is float32).
pub fn decompose_layer_norm(model: &mut ModelProto) -> Result<usize, OnnxError> {
    let opset = opset_version(model);
    let graph = graph_mut(model, NAME)?;
    let mut taken = names_in(graph);
    let mut out: Vec<NodeProto> = Vec::with_capacity(graph.node.len());
    let mut initializers = Vec::new();
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        let int = |n: &str, d: i64| {
            node.attribute
                .iter()
                .find(|a| a.name == n)
                .map_or(d, |a| a.i)
        };
        let extra_outputs = node.output.iter().skip(1).any(|o| !o.is_empty());
        if node.op_type != "LayerNormalization" || !node.domain.is_empty() {
            out.push(node);
            continue;
        }
        if int("axis", -1) != -1 || extra_outputs || node.input.len() < 2 {
            tracing::warn!(node = %node.name, "LayerNormalization kept: not over the last axis only, or Mean/InvStdDev used");
            out.push(node);
            continue;
        }
        let eps = node
            .attribute
            .iter()
            .find(|a| a.name == "epsilon")
            .map_or(1e-5, |a| a.f);
        let mut e = Emitter {
            taken: &mut taken,
            prefix: node.name.clone(),
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
        };
        let x = node.input[0].as_str();
        let mean = e.mean_last(x);
        let centered = e.op("Sub", &[x, &mean], vec![], None);
        let sq = e.op("Mul", &[&centered, &centered], vec![], None);
        let var = e.mean_last(&sq);
        let eps = e.float(eps);
        let var = e.op("Add", &[&var, &eps], vec![], None);
        let std = e.op("Sqrt", &[&var], vec![], None);
        let normed = e.op("Div", &[&centered, &std], vec![], None);
        let y = node.output[0].as_str();
        match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(bias) => {
                let scaled = e.op("Mul", &[&normed, &node.input[1]], vec![], None);
                e.op("Add", &[&scaled, bias], vec![], Some(y));
            }
            None => {
                e.op("Mul", &[&normed, &node.input[1]], vec![], Some(y));
            }
        }
        out.extend(e.nodes);
        initializers.extend(e.initializers);
        count += 1;
    }
    graph.node = out;
    graph.initializer.extend(initializers);
    Ok(count)
}
