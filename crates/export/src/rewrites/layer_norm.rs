//! `LayerNormalization` (opset 17) as `ReduceMean`/`Sub`/`Mul`/`Sqrt`/`Div`,
//! for runtimes or opsets that lack it (ONNX Runtime builds for opset ≤ 16,
//! older OpenVINO front ends), computed as the op's definition says.

use super::decompose::replace_nodes;
use crate::proto::ModelProto;
use crate::OnnxError;

const NAME: &str = "decompose_layer_norm";

/// Replaces every `LayerNormalization` over the last axis whose `Mean` /
/// `InvStdDev` outputs are unused; returns how many. Float32 graphs only
/// (the epsilon constant is float32).
pub fn decompose_layer_norm(model: &mut ModelProto) -> Result<usize, OnnxError> {
    replace_nodes(model, NAME, |node, e| {
        let int = |n: &str, d: i64| {
            node.attribute
                .iter()
                .find(|a| a.name == n)
                .map_or(d, |a| a.i)
        };
        let extra_outputs = node.output.iter().skip(1).any(|o| !o.is_empty());
        if node.op_type != "LayerNormalization" || !node.domain.is_empty() {
            return Ok(false);
        }
        if int("axis", -1) != -1 || extra_outputs || node.input.len() < 2 {
            tracing::warn!(node = %node.name, "LayerNormalization kept: not over the last axis only, or Mean/InvStdDev used");
            return Ok(false);
        }
        let eps = node
            .attribute
            .iter()
            .find(|a| a.name == "epsilon")
            .map_or(1e-5, |a| a.f);
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
        Ok(true)
    })
}
