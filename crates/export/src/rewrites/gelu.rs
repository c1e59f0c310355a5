//! `Gelu` (opset 20) as `Erf` / `Tanh` arithmetic, so a graph written for
//! opset 20 runs on runtimes that stop at opset 19 — and opset 17 exports
//! (ours) never need it.

use super::decompose::replace_nodes;
use crate::proto::ModelProto;
use crate::OnnxError;

const NAME: &str = "decompose_gelu";

/// Replaces every `Gelu` (`approximate` "none" or "tanh"); returns how many.
pub fn decompose_gelu(model: &mut ModelProto) -> Result<usize, OnnxError> {
    replace_nodes(model, NAME, |node, e| {
        if node.op_type != "Gelu" || !node.domain.is_empty() || node.input.is_empty() {
            return Ok(false);
        }
        let approximate = node
            .attribute
            .iter()
            .find(|a| a.name == "approximate")
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_else(|| "none".to_owned());
        let x = node.input[0].as_str();
        let y = node.output[0].as_str();
        let inner = match approximate.as_str() {
            "none" => {
                let sqrt2 = e.float(std::f32::consts::SQRT_2);
                let scaled = e.op("Div", &[x, &sqrt2], vec![], None);
                e.op("Erf", &[&scaled], vec![], None)
            }
            "tanh" => {
                let three = e.float(3.0);
                let cube = e.op("Pow", &[x, &three], vec![], None);
                let c = e.float(0.044715);
                let term = e.op("Mul", &[&cube, &c], vec![], None);
                let sum = e.op("Add", &[x, &term], vec![], None);
                let k = e.float((2.0 / std::f64::consts::PI).sqrt() as f32);
                let scaled = e.op("Mul", &[&sum, &k], vec![], None);
                e.op("Tanh", &[&scaled], vec![], None)
            }
            other => {
                return Err(OnnxError::Rewrite {
                    rewrite: NAME.to_owned(),
                    reason: format!("Gelu node '{}': approximate '{other}'", node.name),
                })
            }
        };
        let one = e.float(1.0);
        let plus = e.op("Add", &[&inner, &one], vec![], None);
        let half = e.float(0.5);
        let xh = e.op("Mul", &[x, &half], vec![], None);
        e.op("Mul", &[&xh, &plus], vec![], Some(y));
        Ok(true)
    })
}
