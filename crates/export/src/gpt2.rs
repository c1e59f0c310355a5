//! GPT-2 (`GPT2LMHeadModel`) with a KV cache: see [`super::decoder_io`] for
//! the inputs and outputs.

use super::builder::{attr_int, attr_ints, GraphBuilder};
use super::decoder_io::{inputs, outputs};
use super::layers::{activation, conv1d, layer_norm, merge_heads, split_heads, weight_as_is};
use super::proto::ModelProto;
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::gpt2::{Gpt2Config, MODEL_TYPE};

/// Builds the decoder graph.
pub fn build(model: &str, cfg: &Gpt2Config, w: &Weights) -> Result<ModelProto, OnnxError> {
    let (h, heads) = (cfg.n_embd, cfg.n_head);
    if heads == 0 || !h.is_multiple_of(heads) {
        return Err(OnnxError::unsupported(
            model,
            format!("n_embd {h} is not a multiple of n_head {heads}"),
        ));
    }
    let d = h / heads;
    let inner = cfg.n_inner.unwrap_or(4 * h);
    // The original OpenAI upload has no `transformer.` prefix.
    let p = if w.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let mut g = GraphBuilder::new();
    let io = inputs(&mut g, cfg.n_layer, heads, d);

    g.set_scope("/embeddings");
    let wte = weight_as_is(&mut g, w, &format!("{p}wte.weight"), &[cfg.vocab_size, h])?;
    let wpe = weight_as_is(&mut g, w, &format!("{p}wpe.weight"), &[cfg.n_positions, h])?;
    let tok = g.op("Gather", &[&wte, &io.input_ids], vec![attr_int("axis", 0)]);
    let pos = g.op(
        "Gather",
        &[&wpe, &io.position_ids],
        vec![attr_int("axis", 0)],
    );
    let mut x = g.op("Add", &[&tok, &pos], vec![]);

    let bias = io.causal_bias(&mut g);

    let mut present = Vec::new();
    for (i, (past_k, past_v)) in io.past.iter().enumerate() {
        let l = |n: &str| format!("{p}h.{i}.{n}");
        g.set_scope(format!("/h.{i}/attn"));
        let a = layer_norm(&mut g, w, &x, &l("ln_1"), h, cfg.layer_norm_epsilon)?;
        let qkv = conv1d(&mut g, w, &a, &l("attn.c_attn"), (h, 3 * h))?;
        let sizes = g.ints(&[h as i64, h as i64, h as i64]);
        let parts = g.op_n("Split", &[&qkv, &sizes], vec![attr_int("axis", -1)], 3);
        let q = split_heads(&mut g, &parts[0], heads, d);
        let k = split_heads(&mut g, &parts[1], heads, d);
        let v = split_heads(&mut g, &parts[2], heads, d);
        let k = g.op("Concat", &[past_k, &k], vec![attr_int("axis", 2)]);
        let v = g.op("Concat", &[past_v, &v], vec![attr_int("axis", 2)]);
        let kt = g.op("Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
        let mut scores = g.op("MatMul", &[&q, &kt], vec![]);
        let mut scale = 1.0f32;
        if cfg.scale_attn_weights {
            scale /= (d as f32).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (i + 1) as f32;
        }
        if scale != 1.0 {
            let s = g.float(scale);
            scores = g.op("Mul", &[&scores, &s], vec![]);
        }
        let scores = g.op("Add", &[&scores, &bias], vec![]);
        let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
        let ctx = g.op("MatMul", &[&probs, &v], vec![]);
        let ctx = merge_heads(&mut g, &ctx, h);
        let out = conv1d(&mut g, w, &ctx, &l("attn.c_proj"), (h, h))?;
        x = g.op("Add", &[&x, &out], vec![]);
        present.push((k, v));

        g.set_scope(format!("/h.{i}/mlp"));
        let m = layer_norm(&mut g, w, &x, &l("ln_2"), h, cfg.layer_norm_epsilon)?;
        let up = conv1d(&mut g, w, &m, &l("mlp.c_fc"), (h, inner))?;
        let act = activation(&mut g, &up, cfg.activation_function);
        let down = conv1d(&mut g, w, &act, &l("mlp.c_proj"), (inner, h))?;
        x = g.op("Add", &[&x, &down], vec![]);
    }
    g.set_scope("/lm_head");
    let x = layer_norm(
        &mut g,
        w,
        &x,
        &format!("{p}ln_f"),
        h,
        cfg.layer_norm_epsilon,
    )?;
    // The head is the token embedding (GPT-2 always ties); a Transpose of
    // the one initializer keeps the file free of a second copy.
    let head = g.op("Transpose", &[&wte], vec![attr_ints("perm", &[1, 0])]);
    let logits = g.op("MatMul", &[&x, &head], vec![]);
    outputs(&mut g, &logits, cfg.vocab_size, &present, heads, d);
    Ok(g.finish(
        MODEL_TYPE,
        "GPT-2 decoder with KV cache exported from safetensors by ipfs-accelerate",
    ))
}
