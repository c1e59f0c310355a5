//! Building blocks shared by the exported architectures: linear layers,
//! norms, activations, head reshapes, all in plain opset-17 ops.

use super::builder::{attr_float, attr_int, attr_ints, GraphBuilder};
use super::weights::Weights;
use super::OnnxError;
use ipfs_accelerate_models::layers::activation::Activation;

/// `x @ W^T + b` of a `torch.nn.Linear` (`{prefix}.weight` `[out, in]`),
/// with the weight stored transposed so it is one `MatMul`.
pub fn linear(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    (inp, out): (usize, usize),
    bias: bool,
) -> Result<String, OnnxError> {
    let weight = w.get_transposed(&format!("{prefix}.weight"), out, inp)?;
    let weight = g.weight(&format!("{prefix}.weight.T"), &[inp, out], &weight);
    let y = g.op("MatMul", &[x, &weight], vec![]);
    if !bias {
        return Ok(y);
    }
    let b = weight_as_is(g, w, &format!("{prefix}.bias"), &[out])?;
    Ok(g.op("Add", &[&y, &b], vec![]))
}

/// GPT-2's `Conv1D` (`{prefix}.weight` already `[in, out]`) plus bias.
pub fn conv1d(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    (inp, out): (usize, usize),
) -> Result<String, OnnxError> {
    let weight = weight_as_is(g, w, &format!("{prefix}.weight"), &[inp, out])?;
    let b = weight_as_is(g, w, &format!("{prefix}.bias"), &[out])?;
    let y = g.op("MatMul", &[x, &weight], vec![]);
    Ok(g.op("Add", &[&y, &b], vec![]))
}

/// `down(act(up(x)))`: two `torch.nn.Linear`s (`{up}.weight` `[inner,
/// in]`, `{down}.weight` `[out, inner]`, with or without bias) around an
/// activation, the feed-forward / projection every family has.
pub fn feed_forward(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    (up, down): (&str, &str),
    (inp, inner, out): (usize, usize, usize),
    (act, bias): (Activation, bool),
) -> Result<String, OnnxError> {
    let h = linear(g, w, x, up, (inp, inner), bias)?;
    let h = activation(g, &h, act);
    linear(g, w, &h, down, (inner, out), bias)
}

/// `x / ||x||` over the last axis.
pub fn l2_normalize(g: &mut GraphBuilder, x: &str) -> String {
    let sq = g.op("Mul", &[x, x], vec![]);
    let last = g.ints(&[-1]);
    let sum = g.op("ReduceSum", &[&sq, &last], vec![attr_int("keepdims", 1)]);
    let norm = g.op("Sqrt", &[&sum], vec![]);
    g.op("Div", &[x, &norm], vec![])
}

/// A checkpoint tensor as an initializer of the same name and shape.
pub fn weight_as_is(
    g: &mut GraphBuilder,
    w: &Weights,
    name: &str,
    shape: &[usize],
) -> Result<String, OnnxError> {
    let data = w.get(name, shape)?;
    Ok(g.weight(name, shape, &data))
}

/// `torch.nn.LayerNorm` over the last axis (`{prefix}.weight` / `.bias`).
pub fn layer_norm(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    hidden: usize,
    eps: f64,
) -> Result<String, OnnxError> {
    let scale = weight_as_is(g, w, &format!("{prefix}.weight"), &[hidden])?;
    let b = weight_as_is(g, w, &format!("{prefix}.bias"), &[hidden])?;
    Ok(g.op(
        "LayerNormalization",
        &[x, &scale, &b],
        vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)],
    ))
}

/// LLaMA's RMSNorm: `w * x / sqrt(mean(x²) + eps)`, as `LlamaRMSNorm`
/// computes it (float32 throughout).
pub fn rms_norm(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    weight: &str,
    hidden: usize,
    eps: f64,
) -> Result<String, OnnxError> {
    let scale = weight_as_is(g, w, weight, &[hidden])?;
    let sq = g.op("Mul", &[x, x], vec![]);
    let mean = g.op(
        "ReduceMean",
        &[&sq],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    );
    let eps = g.float(eps as f32);
    let var = g.op("Add", &[&mean, &eps], vec![]);
    let rms = g.op("Sqrt", &[&var], vec![]);
    let normed = g.op("Div", &[x, &rms], vec![]);
    Ok(g.op("Mul", &[&scale, &normed], vec![]))
}

/// The activations `transformers` names in configs (`ACT2FN`), as the
/// models crate parses them. Opset 17 has
/// no `Gelu` op, so GELU is written with `Erf` / `Tanh`.
pub fn activation(g: &mut GraphBuilder, x: &str, act: Activation) -> String {
    match act {
        Activation::Gelu => {
            // x * 0.5 * (1 + erf(x / sqrt(2)))
            let sqrt2 = g.float(std::f32::consts::SQRT_2);
            let scaled = g.op("Div", &[x, &sqrt2], vec![]);
            let erf = g.op("Erf", &[&scaled], vec![]);
            half_x_one_plus(g, x, &erf)
        }
        Activation::GeluTanh => {
            // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
            let three = g.float(3.0);
            let cube = g.op("Pow", &[x, &three], vec![]);
            let c = g.float(0.044715);
            let term = g.op("Mul", &[&cube, &c], vec![]);
            let inner = g.op("Add", &[x, &term], vec![]);
            let k = g.float((2.0 / std::f64::consts::PI).sqrt() as f32);
            let scaled = g.op("Mul", &[&inner, &k], vec![]);
            let tanh = g.op("Tanh", &[&scaled], vec![]);
            half_x_one_plus(g, x, &tanh)
        }
        Activation::QuickGelu => {
            let k = g.float(1.702);
            let scaled = g.op("Mul", &[x, &k], vec![]);
            let sig = g.op("Sigmoid", &[&scaled], vec![]);
            g.op("Mul", &[x, &sig], vec![])
        }
        Activation::Silu => {
            let sig = g.op("Sigmoid", &[x], vec![]);
            g.op("Mul", &[x, &sig], vec![])
        }
        Activation::Relu => g.op("Relu", &[x], vec![]),
        Activation::Tanh => g.op("Tanh", &[x], vec![]),
    }
}

/// `x * 0.5 * (1 + t)`: the outer form both GELUs share, `t` being the
/// `Erf` or `Tanh` term.
fn half_x_one_plus(g: &mut GraphBuilder, x: &str, t: &str) -> String {
    let one = g.float(1.0);
    let plus = g.op("Add", &[t, &one], vec![]);
    let half = g.float(0.5);
    let xh = g.op("Mul", &[x, &half], vec![]);
    g.op("Mul", &[&xh, &plus], vec![])
}

/// `[b, s, heads * d]` -> `[b, heads, s, d]`.
pub fn split_heads(g: &mut GraphBuilder, x: &str, heads: usize, d: usize) -> String {
    let shape = g.ints(&[0, 0, heads as i64, d as i64]);
    let r = g.op("Reshape", &[x, &shape], vec![]);
    g.op("Transpose", &[&r], vec![attr_ints("perm", &[0, 2, 1, 3])])
}

/// `softmax(q kᵀ + bias) v` over split heads (`[b, heads, s, d]`; the
/// query already scaled as the model scales it), heads merged back to
/// `[b, s, width]`.
pub fn attention(
    g: &mut GraphBuilder,
    q: &str,
    (k, v): (&str, &str),
    bias: Option<&str>,
    width: usize,
) -> String {
    let kt = g.op("Transpose", &[k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
    let mut scores = g.op("MatMul", &[q, &kt], vec![]);
    if let Some(bias) = bias {
        scores = g.op("Add", &[&scores, bias], vec![]);
    }
    let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
    let ctx = g.op("MatMul", &[&probs, v], vec![]);
    merge_heads(g, &ctx, width)
}

/// `[b, heads, s, d]` -> `[b, s, heads * d]`.
pub fn merge_heads(g: &mut GraphBuilder, x: &str, width: usize) -> String {
    let t = g.op("Transpose", &[x], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let shape = g.ints(&[0, 0, width as i64]);
    g.op("Reshape", &[&t, &shape], vec![])
}

/// The size of axis `axis` of `x` as a 0-D int64.
pub fn dim_scalar(g: &mut GraphBuilder, x: &str, axis: i64) -> String {
    let shape = g.op(
        "Shape",
        &[x],
        vec![attr_int("start", axis), attr_int("end", axis + 1)],
    );
    let zero = g.ints(&[0]);
    g.op("Squeeze", &[&shape, &zero], vec![])
}

/// The additive attention bias `[b, 1, s, past + s]` of a causal decoder:
/// 0 where query `i` (absolute position `past + i`) may see key `j`
/// (`j <= past + i` and `attention_mask[b, j] == 1`), the float32 minimum
/// elsewhere, as `transformers` builds it.
pub fn causal_bias(g: &mut GraphBuilder, attention_mask: &str, past: &str, seq: &str) -> String {
    let total = g.op("Add", &[past, seq], vec![]);
    let zero = g.int(0);
    let one = g.int(1);
    let q_pos = g.op("Range", &[past, &total, &one], vec![]);
    let k_pos = g.op("Range", &[&zero, &total, &one], vec![]);
    let ax1 = g.ints(&[1]);
    let ax0 = g.ints(&[0]);
    let q_col = g.op("Unsqueeze", &[&q_pos, &ax1], vec![]); // [s, 1]
    let k_row = g.op("Unsqueeze", &[&k_pos, &ax0], vec![]); // [1, T]
    let causal = g.op("LessOrEqual", &[&k_row, &q_col], vec![]); // [s, T]
    let keep = g.op(
        "Cast",
        &[attention_mask],
        vec![attr_int("to", i64::from(super::proto::data_type::BOOL))],
    );
    let ax12 = g.ints(&[1, 2]);
    let keep = g.op("Unsqueeze", &[&keep, &ax12], vec![]); // [b, 1, 1, T]
    let allowed = g.op("And", &[&causal, &keep], vec![]); // [b, 1, s, T]
    let open = g.float(0.0);
    let closed = g.float(f32::MIN);
    g.op("Where", &[&allowed, &open, &closed], vec![])
}
