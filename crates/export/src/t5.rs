//! T5 (`T5ForConditionalGeneration`) as optimum's seq2seq export
//! (`text2text-generation-with-past`), three graphs:
//!
//! - `encoder_model.onnx`: `input_ids`, `attention_mask` `[batch_size,
//!   encoder_sequence_length]` -> `last_hidden_state`;
//! - `decoder_model.onnx` (the first step): `input_ids` `[batch_size,
//!   decoder_sequence_length]`, `encoder_attention_mask`,
//!   `encoder_hidden_states` -> `logits` and the whole cache,
//!   `present.{i}.decoder.key/value` (self-attention) and
//!   `present.{i}.encoder.key/value` (cross-attention);
//! - `decoder_with_past_model.onnx` (later steps): `input_ids`,
//!   `encoder_attention_mask` and `past_key_values.{i}.{decoder,encoder}.{key,value}`
//!   -> `logits` and the grown `present.{i}.decoder.key/value`.
//!
//! The relative position bias is a table over relative positions computed
//! here with transformers' bucket arithmetic (`bucket` of the candle
//! model): positions further apart than `relative_attention_max_distance`
//! all fall in the last bucket, so the graph clamps and gathers. Relu and
//! gated (`gated-gelu`, the tanh GELU) feed-forwards; tied or separate head.

use super::builder::{attr_int, attr_ints, Dim, GraphBuilder};
use super::layers::{activation, attention, dim_scalar, linear, rms_norm, split_heads};
use super::proto::{data_type, ModelProto};
use super::seq2seq_io::{decoder_inputs, decoder_outputs, BATCH, ENC_SEQ};
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::t5::{bucket, T5Config, MODEL_TYPE};

/// The dimensions every graph shares.
struct Dims {
    d: usize,
    heads: usize,
    d_kv: usize,
    inner: usize,
    gated: bool,
    act: ipfs_accelerate_models::layers::activation::Activation,
}

/// Builds the three graphs: encoder, decoder, decoder with past.
pub fn build(model: &str, cfg: &T5Config, w: &Weights) -> Result<[ModelProto; 3], OnnxError> {
    let (gated, act) = cfg
        .feed_forward()
        .map_err(|e| OnnxError::unsupported(model, e.to_string()))?;
    let dims = Dims {
        d: cfg.d_model,
        heads: cfg.num_heads,
        d_kv: cfg.d_kv,
        inner: cfg.num_heads * cfg.d_kv,
        gated,
        act,
    };
    Ok([
        encoder(cfg, &dims, w)?,
        decoder(cfg, &dims, w, false)?,
        decoder(cfg, &dims, w, true)?,
    ])
}

/// The shared embedding's name (`shared`, or the encoder's copy).
fn shared_name(w: &Weights) -> &'static str {
    if w.has("shared.weight") {
        "shared.weight"
    } else {
        "encoder.embed_tokens.weight"
    }
}

/// The relative position bias `[1, heads, q, k]` for queries at absolute
/// positions `past..past + q` against keys `0..past + q` (the stack's
/// first block's table; `None` when the checkpoint has none).
fn position_bias(
    g: &mut GraphBuilder,
    cfg: &T5Config,
    w: &Weights,
    prefix: &str,
    bidirectional: bool,
    (past, q_len): (&str, &str),
) -> Result<String, OnnxError> {
    let name = format!("{prefix}.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    let (buckets, heads) = (cfg.relative_attention_num_buckets, cfg.num_heads);
    let table = w.get(&name, &[buckets, heads])?;
    // One row per relative position in [-r, r]. Further apart, the bucket
    // no longer changes (checked: a config where it still would is refused
    // rather than exported wrong).
    let max_distance = cfg.relative_attention_max_distance;
    let r = max_distance.max(buckets) as i64;
    let bucket_of = |relative: i64| bucket(relative, bidirectional, buckets, max_distance);
    let saturated = bucket_of(r) == bucket_of(r + 1)
        && bucket_of(r) == bucket_of(16 * r)
        && bucket_of(-r) == bucket_of(-r - 1)
        && bucket_of(-r) == bucket_of(-16 * r);
    if !saturated {
        return Err(OnnxError::unsupported(
            prefix,
            format!(
                "relative_attention_max_distance {max_distance} with {buckets} buckets: the \
                 bucket of a distance keeps changing past {r}"
            ),
        ));
    }
    let mut rows = Vec::with_capacity((2 * r as usize + 1) * heads);
    for relative in -r..=r {
        let b = bucket_of(relative) as usize;
        if b >= buckets {
            return Err(OnnxError::unsupported(
                prefix,
                format!("relative position {relative} falls in bucket {b} of {buckets}"),
            ));
        }
        rows.extend_from_slice(&table[b * heads..(b + 1) * heads]);
    }
    let table = g.weight(
        &format!("{prefix}.relative_position_bias_by_distance"),
        &[2 * r as usize + 1, heads],
        &rows,
    );
    let total = g.op("Add", &[past, q_len], vec![]);
    let one = g.int(1);
    let zero = g.int(0);
    let q_pos = g.op("Range", &[past, &total, &one], vec![]);
    let k_pos = g.op("Range", &[&zero, &total, &one], vec![]);
    let (ax0, ax1) = (g.ints(&[0]), g.ints(&[1]));
    let q_col = g.op("Unsqueeze", &[&q_pos, &ax1], vec![]);
    let k_row = g.op("Unsqueeze", &[&k_pos, &ax0], vec![]);
    let relative = g.op("Sub", &[&k_row, &q_col], vec![]);
    let (lo, hi) = (g.int(-r), g.int(r));
    let relative = g.op("Max", &[&relative, &lo], vec![]);
    let relative = g.op("Min", &[&relative, &hi], vec![]);
    let index = g.op("Add", &[&relative, &hi], vec![]);
    let bias = g.op("Gather", &[&table, &index], vec![attr_int("axis", 0)]);
    let bias = g.op("Transpose", &[&bias], vec![attr_ints("perm", &[2, 0, 1])]);
    Ok(g.op("Unsqueeze", &[&bias, &ax0], vec![]))
}

/// `[b, k]` int64 mask -> additive `[b, 1, 1, k]`: 0 where 1, the float32
/// minimum where 0.
fn mask_bias(g: &mut GraphBuilder, mask: &str) -> String {
    let keep = g.op(
        "Cast",
        &[mask],
        vec![attr_int("to", i64::from(data_type::BOOL))],
    );
    let ax12 = g.ints(&[1, 2]);
    let keep = g.op("Unsqueeze", &[&keep, &ax12], vec![]);
    let (open, closed) = (g.float(0.0), g.float(f32::MIN));
    g.op("Where", &[&keep, &open, &closed], vec![])
}

/// Unscaled attention (T5 does not scale the scores) of `q` against the
/// keys and values `[b, heads, k, d_kv]`, with an additive `bias`, through
/// the output projection `{p}.o`.
fn attend(
    g: &mut GraphBuilder,
    w: &Weights,
    dims: &Dims,
    p: &str,
    q: &str,
    (k, v): (&str, &str),
    bias: &str,
) -> Result<String, OnnxError> {
    let ctx = attention(g, q, (k, v), Some(bias), dims.inner);
    linear(g, w, &ctx, &format!("{p}.o"), (dims.inner, dims.d), false)
}

/// Query, key and value projections of `x` (keys and values of `kv_from`)
/// with heads split.
fn projections(
    g: &mut GraphBuilder,
    w: &Weights,
    dims: &Dims,
    p: &str,
    x: &str,
    kv_from: Option<&str>,
) -> Result<[String; 3], OnnxError> {
    let (d, inner) = (dims.d, dims.inner);
    let q = linear(g, w, x, &format!("{p}.q"), (d, inner), false)?;
    let mut out = [
        split_heads(g, &q, dims.heads, dims.d_kv),
        String::new(),
        String::new(),
    ];
    if let Some(source) = kv_from {
        let k = linear(g, w, source, &format!("{p}.k"), (d, inner), false)?;
        let v = linear(g, w, source, &format!("{p}.v"), (d, inner), false)?;
        out[1] = split_heads(g, &k, dims.heads, dims.d_kv);
        out[2] = split_heads(g, &v, dims.heads, dims.d_kv);
    }
    Ok(out)
}

/// The feed-forward sub-layer (`DenseReluDense`, gated or not) with its
/// norm and residual.
fn feed_forward(
    g: &mut GraphBuilder,
    w: &Weights,
    cfg: &T5Config,
    dims: &Dims,
    p: &str,
    x: &str,
) -> Result<String, OnnxError> {
    let (d, ff) = (dims.d, cfg.d_ff);
    let h = rms_norm(
        g,
        w,
        x,
        &format!("{p}.layer_norm.weight"),
        d,
        cfg.layer_norm_epsilon,
    )?;
    let dense = format!("{p}.DenseReluDense");
    let mut up = if dims.gated {
        let a = linear(g, w, &h, &format!("{dense}.wi_0"), (d, ff), false)?;
        let a = activation(g, &a, dims.act);
        let b = linear(g, w, &h, &format!("{dense}.wi_1"), (d, ff), false)?;
        g.op("Mul", &[&a, &b], vec![])
    } else {
        let a = linear(g, w, &h, &format!("{dense}.wi"), (d, ff), false)?;
        activation(g, &a, dims.act)
    };
    up = linear(g, w, &up, &format!("{dense}.wo"), (ff, d), false)?;
    Ok(g.op("Add", &[x, &up], vec![]))
}

fn encoder(cfg: &T5Config, dims: &Dims, w: &Weights) -> Result<ModelProto, OnnxError> {
    let mut g = GraphBuilder::new();
    let seq = [Dim::named(BATCH), Dim::named(ENC_SEQ)];
    let ids = g.input("input_ids", data_type::INT64, &seq);
    let mask = g.input("attention_mask", data_type::INT64, &seq);
    g.set_scope("/encoder/embed_tokens");
    let shared = shared_name(w);
    let embed = g.weight(
        shared,
        &[cfg.vocab_size, dims.d],
        &w.get(shared, &[cfg.vocab_size, dims.d])?,
    );
    let mut x = g.op("Gather", &[&embed, &ids], vec![attr_int("axis", 0)]);
    g.set_scope("/encoder/bias");
    let len = dim_scalar(&mut g, &ids, 1);
    let zero = g.int(0);
    let bias = position_bias(&mut g, cfg, w, "encoder", true, (&zero, &len))?;
    let masked = mask_bias(&mut g, &mask);
    let bias = g.op("Add", &[&bias, &masked], vec![]);
    for i in 0..cfg.num_layers {
        let p = format!("encoder.block.{i}.layer");
        g.set_scope(format!("/encoder/block.{i}/self_attention"));
        let eps = cfg.layer_norm_epsilon;
        let h = rms_norm(
            &mut g,
            w,
            &x,
            &format!("{p}.0.layer_norm.weight"),
            dims.d,
            eps,
        )?;
        let attn = format!("{p}.0.SelfAttention");
        let [q, k, v] = projections(&mut g, w, dims, &attn, &h, Some(&h))?;
        let out = attend(&mut g, w, dims, &attn, &q, (&k, &v), &bias)?;
        x = g.op("Add", &[&x, &out], vec![]);
        g.set_scope(format!("/encoder/block.{i}/feed_forward"));
        x = feed_forward(&mut g, w, cfg, dims, &format!("{p}.1"), &x)?;
    }
    g.set_scope("/encoder/final_layer_norm");
    let x = rms_norm(
        &mut g,
        w,
        &x,
        "encoder.final_layer_norm.weight",
        dims.d,
        cfg.layer_norm_epsilon,
    )?;
    g.set_scope("");
    g.output(
        &x,
        "last_hidden_state",
        data_type::FLOAT,
        &[
            Dim::named(BATCH),
            Dim::named(ENC_SEQ),
            Dim::Fixed(dims.d as i64),
        ],
    );
    Ok(g.finish(
        "t5_encoder",
        "T5 encoder exported from safetensors by ipfs-accelerate",
    ))
}

/// The decoder's first step (`with_past` false: no cache in, the whole
/// cache out) or a later step (the cache in, the grown self-attention
/// cache out).
fn decoder(
    cfg: &T5Config,
    dims: &Dims,
    w: &Weights,
    with_past: bool,
) -> Result<ModelProto, OnnxError> {
    let layers = cfg.num_decoder_layers.unwrap_or(cfg.num_layers);
    let eps = cfg.layer_norm_epsilon;
    let mut g = GraphBuilder::new();
    let io = decoder_inputs(
        &mut g,
        (layers, dims.heads, dims.d_kv, dims.d),
        with_past,
        true,
    );
    let (ids, past, encoded) = (&io.input_ids, &io.past, &io.encoder_hidden_states);
    let enc_mask = io.encoder_attention_mask.clone().unwrap_or_default();

    g.set_scope("/decoder/embed_tokens");
    let shared = shared_name(w);
    let embed = g.weight(
        shared,
        &[cfg.vocab_size, dims.d],
        &w.get(shared, &[cfg.vocab_size, dims.d])?,
    );
    let mut x = g.op("Gather", &[&embed, ids], vec![attr_int("axis", 0)]);

    g.set_scope("/decoder/bias");
    let q_len = dim_scalar(&mut g, ids, 1);
    let past_len = match past.first() {
        Some(p) => dim_scalar(&mut g, &p[0], 2),
        None => g.int(0),
    };
    let bias = position_bias(&mut g, cfg, w, "decoder", false, (&past_len, &q_len))?;
    let self_bias = g.op("Add", &[&bias, &io.causal], vec![]);
    let cross_bias = mask_bias(&mut g, &enc_mask);

    let mut present = Vec::with_capacity(layers);
    for i in 0..layers {
        let p = format!("decoder.block.{i}.layer");
        g.set_scope(format!("/decoder/block.{i}/self_attention"));
        let h = rms_norm(
            &mut g,
            w,
            &x,
            &format!("{p}.0.layer_norm.weight"),
            dims.d,
            eps,
        )?;
        let attn = format!("{p}.0.SelfAttention");
        let [q, k, v] = projections(&mut g, w, dims, &attn, &h, Some(&h))?;
        let (k, v) = match past.get(i) {
            Some(cached) => (
                g.op("Concat", &[&cached[0], &k], vec![attr_int("axis", 2)]),
                g.op("Concat", &[&cached[1], &v], vec![attr_int("axis", 2)]),
            ),
            None => (k, v),
        };
        let out = attend(&mut g, w, dims, &attn, &q, (&k, &v), &self_bias)?;
        x = g.op("Add", &[&x, &out], vec![]);

        g.set_scope(format!("/decoder/block.{i}/cross_attention"));
        let h = rms_norm(
            &mut g,
            w,
            &x,
            &format!("{p}.1.layer_norm.weight"),
            dims.d,
            eps,
        )?;
        let attn = format!("{p}.1.EncDecAttention");
        // The first step projects the encoder output; later steps take
        // those keys and values from the cache.
        let (q, ck, cv) = match past.get(i) {
            Some(cached) => {
                let [q, _, _] = projections(&mut g, w, dims, &attn, &h, None)?;
                (q, cached[2].clone(), cached[3].clone())
            }
            None => {
                let [q, k, v] = projections(&mut g, w, dims, &attn, &h, encoded.as_deref())?;
                (q, k, v)
            }
        };
        let out = attend(&mut g, w, dims, &attn, &q, (&ck, &cv), &cross_bias)?;
        x = g.op("Add", &[&x, &out], vec![]);

        g.set_scope(format!("/decoder/block.{i}/feed_forward"));
        x = feed_forward(&mut g, w, cfg, dims, &format!("{p}.2"), &x)?;
        present.push([k, v, ck, cv]);
    }
    g.set_scope("/decoder/final_layer_norm");
    let mut x = rms_norm(
        &mut g,
        w,
        &x,
        "decoder.final_layer_norm.weight",
        dims.d,
        eps,
    )?;
    g.set_scope("/lm_head");
    let logits = if cfg.tie_word_embeddings {
        // mesh-tensorflow's rescaling before the shared embedding, kept
        // by transformers.
        let scale = g.float((dims.d as f32).powf(-0.5));
        x = g.op("Mul", &[&x, &scale], vec![]);
        let head = g.op("Transpose", &[&embed], vec![attr_ints("perm", &[1, 0])]);
        g.op("MatMul", &[&x, &head], vec![])
    } else {
        linear(&mut g, w, &x, "lm_head", (dims.d, cfg.vocab_size), false)?
    };
    decoder_outputs(
        &mut g,
        (&logits, cfg.vocab_size),
        &present,
        (dims.heads, dims.d_kv),
        with_past,
    );
    let name = if with_past {
        "t5_decoder_with_past"
    } else {
        "t5_decoder"
    };
    Ok(g.finish(
        name,
        "T5 decoder exported from safetensors by ipfs-accelerate",
    ))
}
