//! OPT (`OPTForCausalLM`) with a KV cache: see [`super::decoder_io`] for
//! the inputs and outputs. Every layout the candle model loads: pre- and
//! post-LayerNorm (`do_layer_norm_before`), an embedding narrower than the
//! hidden size (`word_embed_proj_dim`, `project_in` / `project_out`),
//! LayerNorms without affine parameters, projections without bias, weights
//! with or without the `model.` prefix, tied or separate LM head.

use super::builder::{attr_float, attr_int, attr_ints, GraphBuilder};
use super::decoder_io::{inputs, outputs};
use super::layers::{activation, attention, layer_norm, linear, split_heads, weight_as_is};
use super::proto::ModelProto;
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::opt::{OptConfig, MODEL_TYPE};

/// Learned positions start at index 2 (fairseq's offset, kept by
/// transformers' `OPTLearnedPositionalEmbedding`).
const POSITION_OFFSET: i64 = 2;
/// `nn.LayerNorm`'s default epsilon, which OPT uses.
const LAYER_NORM_EPS: f64 = 1e-5;

/// A LayerNorm with its weights, or (`layer_norm_elementwise_affine:
/// false`) without: scale 1, shift 0.
fn norm(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    h: usize,
    affine: bool,
) -> Result<String, OnnxError> {
    if affine {
        return layer_norm(g, w, x, prefix, h, LAYER_NORM_EPS);
    }
    let scale = g.weight(&format!("{prefix}.ones"), &[h], &vec![1.0; h]);
    let shift = g.weight(&format!("{prefix}.zeros"), &[h], &vec![0.0; h]);
    Ok(g.op(
        "LayerNormalization",
        &[x, &scale, &shift],
        vec![
            attr_int("axis", -1),
            attr_float("epsilon", LAYER_NORM_EPS as f32),
        ],
    ))
}

/// Builds the decoder graph.
pub fn build(model: &str, cfg: &OptConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
    if heads == 0 || !h.is_multiple_of(heads) {
        return Err(OnnxError::unsupported(
            model,
            format!("hidden_size {h} is not a multiple of num_attention_heads {heads}"),
        ));
    }
    let d = h / heads;
    let word_dim = cfg.word_embed_proj_dim.unwrap_or(h);
    let (bias, affine) = (cfg.enable_bias, cfg.layer_norm_elementwise_affine);
    // The original uploads were saved from `OPTModel` (no `model.`).
    let p = if w.has("model.decoder.embed_tokens.weight") {
        "model.decoder."
    } else {
        "decoder."
    };
    let mut g = GraphBuilder::new();
    let io = inputs(&mut g, cfg.num_hidden_layers, heads, d);

    g.set_scope("/embeddings");
    let embed_name = format!("{p}embed_tokens.weight");
    let embed = weight_as_is(&mut g, w, &embed_name, &[cfg.vocab_size, word_dim])?;
    let mut x = g.op(
        "Gather",
        &[&embed, &io.input_ids],
        vec![attr_int("axis", 0)],
    );
    if word_dim != h {
        x = linear(
            &mut g,
            w,
            &x,
            &format!("{p}project_in"),
            (word_dim, h),
            false,
        )?;
    }
    let positions = weight_as_is(
        &mut g,
        w,
        &format!("{p}embed_positions.weight"),
        &[cfg.max_position_embeddings + POSITION_OFFSET as usize, h],
    )?;
    let offset = g.int(POSITION_OFFSET);
    let pos = g.op("Add", &[&io.position_ids, &offset], vec![]);
    let pos = g.op("Gather", &[&positions, &pos], vec![attr_int("axis", 0)]);
    x = g.op("Add", &[&x, &pos], vec![]);

    let mask = io.causal_bias(&mut g);
    let scaling = g.float((d as f32).powf(-0.5));

    let mut present = Vec::new();
    for (i, (past_k, past_v)) in io.past.iter().enumerate() {
        let l = |n: &str| format!("{p}layers.{i}.{n}");
        g.set_scope(format!("/layers.{i}/self_attn"));
        let residual = x.clone();
        let a = if cfg.do_layer_norm_before {
            norm(&mut g, w, &x, &l("self_attn_layer_norm"), h, affine)?
        } else {
            x.clone()
        };
        // transformers scales the query before the product.
        let q = linear(&mut g, w, &a, &l("self_attn.q_proj"), (h, h), bias)?;
        let q = g.op("Mul", &[&q, &scaling], vec![]);
        let k = linear(&mut g, w, &a, &l("self_attn.k_proj"), (h, h), bias)?;
        let v = linear(&mut g, w, &a, &l("self_attn.v_proj"), (h, h), bias)?;
        let q = split_heads(&mut g, &q, heads, d);
        let k = split_heads(&mut g, &k, heads, d);
        let v = split_heads(&mut g, &v, heads, d);
        let k = g.op("Concat", &[past_k, &k], vec![attr_int("axis", 2)]);
        let v = g.op("Concat", &[past_v, &v], vec![attr_int("axis", 2)]);
        let ctx = attention(&mut g, &q, (&k, &v), Some(&mask), h);
        let out = linear(&mut g, w, &ctx, &l("self_attn.out_proj"), (h, h), bias)?;
        x = g.op("Add", &[&residual, &out], vec![]);
        if !cfg.do_layer_norm_before {
            x = norm(&mut g, w, &x, &l("self_attn_layer_norm"), h, affine)?;
        }
        present.push((k, v));

        g.set_scope(format!("/layers.{i}/mlp"));
        let residual = x.clone();
        let m = if cfg.do_layer_norm_before {
            norm(&mut g, w, &x, &l("final_layer_norm"), h, affine)?
        } else {
            x.clone()
        };
        let up = linear(&mut g, w, &m, &l("fc1"), (h, cfg.ffn_dim), bias)?;
        let act = activation(&mut g, &up, cfg.activation_function);
        let down = linear(&mut g, w, &act, &l("fc2"), (cfg.ffn_dim, h), bias)?;
        x = g.op("Add", &[&residual, &down], vec![]);
        if !cfg.do_layer_norm_before {
            x = norm(&mut g, w, &x, &l("final_layer_norm"), h, affine)?;
        }
    }
    g.set_scope("/lm_head");
    if cfg.do_layer_norm_before && !cfg.remove_final_layer_norm {
        x = norm(&mut g, w, &x, &format!("{p}final_layer_norm"), h, affine)?;
    }
    if word_dim != h {
        x = linear(
            &mut g,
            w,
            &x,
            &format!("{p}project_out"),
            (h, word_dim),
            false,
        )?;
    }
    let logits = if cfg.tie_word_embeddings || !w.has("lm_head.weight") {
        // A Transpose of the one embedding initializer: no second copy.
        let head = g.op("Transpose", &[&embed], vec![attr_ints("perm", &[1, 0])]);
        g.op("MatMul", &[&x, &head], vec![])
    } else {
        linear(&mut g, w, &x, "lm_head", (word_dim, cfg.vocab_size), false)?
    };
    outputs(&mut g, &logits, cfg.vocab_size, &present, heads, d);
    Ok(g.finish(
        MODEL_TYPE,
        "OPT decoder with KV cache exported from safetensors by ipfs-accelerate",
    ))
}
