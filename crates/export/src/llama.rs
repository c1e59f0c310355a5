//! LLaMA (`LlamaForCausalLM`) with a KV cache: RMSNorm, RoPE (see
//! [`super::rope`]), grouped-query attention, gated MLP; inputs and
//! outputs as in [`super::decoder_io`]. The cache holds keys after RoPE
//! and only the `num_key_value_heads` heads.

use super::builder::{attr_int, attr_ints, GraphBuilder};
use super::decoder_io::{inputs_of, outputs};
use super::layers::{activation, linear, merge_heads, rms_norm, split_heads, weight_as_is};
use super::proto::ModelProto;
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::llama::{LlamaConfig, MODEL_TYPE};

/// Where a LLaMA decoder's weights are, and what it takes.
#[derive(Debug, Clone, Copy)]
pub struct LlamaParts<'a> {
    /// The body's prefix (`model.`; LLaVA's `model.language_model.` or
    /// `language_model.model.`).
    pub body: &'a str,
    /// The untied head's weight.
    pub head: &'a str,
    /// Takes `inputs_embeds` instead of `input_ids`.
    pub embeds_input: bool,
}

impl Default for LlamaParts<'_> {
    fn default() -> Self {
        Self {
            body: "model.",
            head: "lm_head",
            embeds_input: false,
        }
    }
}

/// Builds the decoder graph.
pub fn build(model: &str, cfg: &LlamaConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    build_parts(model, cfg, w, LlamaParts::default())
}

/// Builds the decoder graph of the weights `parts` locates.
pub fn build_parts(
    model: &str,
    cfg: &LlamaConfig,
    w: &Weights,
    parts: LlamaParts<'_>,
) -> Result<ModelProto, OnnxError> {
    let unsupported = |reason: String| OnnxError::unsupported(model, reason);
    let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
    let kv_heads = cfg.num_key_value_heads.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(unsupported(format!(
            "num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv_heads})"
        )));
    }
    if let Some(p) = cfg.partial_rotary_factor.filter(|p| *p != 1.0) {
        return Err(unsupported(format!("partial_rotary_factor {p}")));
    }
    let d = cfg.head_dim.unwrap_or(h / heads);
    let n_rep = heads / kv_heads;
    let inv_freq = super::rope::inv_freq(cfg, d).map_err(|e| unsupported(e.to_string()))?;

    let mut g = GraphBuilder::new();
    let body = parts.body;
    let io = inputs_of(
        &mut g,
        cfg.num_hidden_layers,
        kv_heads,
        d,
        parts.embeds_input.then_some(h),
    );
    g.set_scope("/embeddings");
    // The embedding is needed for the ids, or for a tied head.
    let embed = (!parts.embeds_input || cfg.tie_word_embeddings)
        .then(|| {
            let name = format!("{body}embed_tokens.weight");
            weight_as_is(&mut g, w, &name, &[cfg.vocab_size, h])
        })
        .transpose()?;
    let mut x = match &embed {
        Some(embed) if !parts.embeds_input => {
            g.op("Gather", &[embed, &io.input_ids], vec![attr_int("axis", 0)])
        }
        _ => io.input_ids.clone(),
    };

    let bias = io.causal_bias(&mut g);

    // cos/sin [b, 1, s, d]: positions × inv_freq, the halves repeated, as
    // LlamaRotaryEmbedding (float32 product, then cat(freqs, freqs)).
    g.set_scope("/rotary");
    let inv = g.weight("rotary.inv_freq", &[d / 2], &inv_freq);
    let posf = g.op("Cast", &[&io.position_ids], vec![attr_int("to", 1)]);
    let ax_last = g.ints(&[-1]);
    let posf = g.op("Unsqueeze", &[&posf, &ax_last], vec![]);
    let freqs = g.op("Mul", &[&posf, &inv], vec![]);
    let emb = g.op("Concat", &[&freqs, &freqs], vec![attr_int("axis", -1)]);
    let ax1 = g.ints(&[1]);
    let cos = g.op("Cos", &[&emb], vec![]);
    let cos = g.op("Unsqueeze", &[&cos, &ax1], vec![]);
    let sin = g.op("Sin", &[&emb], vec![]);
    let sin = g.op("Unsqueeze", &[&sin, &ax1], vec![]);
    let halves = g.ints(&[(d / 2) as i64, (d / 2) as i64]);
    let scale = g.float(1.0 / (d as f32).sqrt());
    // GQA without copying the cache: query heads of one key/value head are
    // folded into its rows ([b, kv, n_rep * s, d]) for the two matmuls.
    let grouped = g.ints(&[0, kv_heads as i64, -1, 0]);
    let per_head = g.ints(&[0, heads as i64, -1, 0]);

    let mut present = Vec::new();
    for (i, (past_k, past_v)) in io.past.iter().enumerate() {
        let l = |n: &str| format!("{body}layers.{i}.{n}");
        let norm = |g: &mut GraphBuilder, x: &str, weight: &str| {
            rms_norm(g, w, x, &l(weight), h, cfg.rms_norm_eps)
        };
        g.set_scope(format!("/layers.{i}/self_attn"));
        let a = norm(&mut g, &x, "input_layernorm.weight")?;
        let bias_on = cfg.attention_bias;
        let project = |g: &mut GraphBuilder, name: &str, out: usize| {
            linear(
                g,
                w,
                &a,
                &l(&format!("self_attn.{name}")),
                (h, out),
                bias_on,
            )
        };
        let q = project(&mut g, "q_proj", heads * d)?;
        let k = project(&mut g, "k_proj", kv_heads * d)?;
        let v = project(&mut g, "v_proj", kv_heads * d)?;
        let q = split_heads(&mut g, &q, heads, d);
        let k = split_heads(&mut g, &k, kv_heads, d);
        let v = split_heads(&mut g, &v, kv_heads, d);
        let rope = |g: &mut GraphBuilder, t: &str| {
            let parts = g.op_n("Split", &[t, &halves], vec![attr_int("axis", -1)], 2);
            let neg = g.op("Neg", &[&parts[1]], vec![]);
            let rotated = g.op("Concat", &[&neg, &parts[0]], vec![attr_int("axis", -1)]);
            let a = g.op("Mul", &[t, &cos], vec![]);
            let b = g.op("Mul", &[&rotated, &sin], vec![]);
            g.op("Add", &[&a, &b], vec![])
        };
        let q = rope(&mut g, &q);
        let k = rope(&mut g, &k);
        let k = g.op("Concat", &[past_k, &k], vec![attr_int("axis", 2)]);
        let v = g.op("Concat", &[past_v, &v], vec![attr_int("axis", 2)]);
        let qg = if n_rep > 1 {
            g.op("Reshape", &[&q, &grouped], vec![])
        } else {
            q
        };
        let kt = g.op("Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
        let scores = g.op("MatMul", &[&qg, &kt], vec![]);
        let scores = if n_rep > 1 {
            g.op("Reshape", &[&scores, &per_head], vec![])
        } else {
            scores
        };
        let scores = g.op("Mul", &[&scores, &scale], vec![]);
        let scores = g.op("Add", &[&scores, &bias], vec![]);
        let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
        let probs = if n_rep > 1 {
            g.op("Reshape", &[&probs, &grouped], vec![])
        } else {
            probs
        };
        let ctx = g.op("MatMul", &[&probs, &v], vec![]);
        let ctx = if n_rep > 1 {
            g.op("Reshape", &[&ctx, &per_head], vec![])
        } else {
            ctx
        };
        let ctx = merge_heads(&mut g, &ctx, heads * d);
        let out = linear(
            &mut g,
            w,
            &ctx,
            &l("self_attn.o_proj"),
            (heads * d, h),
            bias_on,
        )?;
        x = g.op("Add", &[&x, &out], vec![]);
        present.push((k, v));

        g.set_scope(format!("/layers.{i}/mlp"));
        let m = norm(&mut g, &x, "post_attention_layernorm.weight")?;
        let inter = cfg.intermediate_size;
        let gate = linear(&mut g, w, &m, &l("mlp.gate_proj"), (h, inter), cfg.mlp_bias)?;
        let gate = activation(&mut g, &gate, cfg.hidden_act);
        let up = linear(&mut g, w, &m, &l("mlp.up_proj"), (h, inter), cfg.mlp_bias)?;
        let prod = g.op("Mul", &[&gate, &up], vec![]);
        let down = linear(
            &mut g,
            w,
            &prod,
            &l("mlp.down_proj"),
            (inter, h),
            cfg.mlp_bias,
        )?;
        x = g.op("Add", &[&x, &down], vec![]);
    }
    g.set_scope("/lm_head");
    let x = rms_norm(
        &mut g,
        w,
        &x,
        &format!("{body}norm.weight"),
        h,
        cfg.rms_norm_eps,
    )?;
    // transformers ties whenever the config says so, whatever the file holds.
    let logits = match (&embed, cfg.tie_word_embeddings) {
        (Some(embed), true) => {
            let head = g.op("Transpose", &[embed], vec![attr_ints("perm", &[1, 0])]);
            g.op("MatMul", &[&x, &head], vec![])
        }
        _ => linear(&mut g, w, &x, parts.head, (h, cfg.vocab_size), false)?,
    };
    outputs(&mut g, &logits, cfg.vocab_size, &present, kv_heads, d);
    Ok(g.finish(
        MODEL_TYPE,
        "LLaMA decoder with KV cache exported from safetensors by ipfs-accelerate",
    ))
}
