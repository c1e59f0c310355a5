//! Whisper (`WhisperForConditionalGeneration`) as optimum's seq2seq export
//! (`automatic-speech-recognition-with-past`), three graphs:
//!
//! - `encoder_model.onnx`: `input_features` `[batch_size, num_mel_bins,
//!   frames]` (the log-mel features, 3000 frames for 30 s) ->
//!   `last_hidden_state`, and (beyond optimum's layout) each decoder
//!   layer's cross-attention cache `present.{i}.encoder.key/value`, so
//!   that the with-past graph alone can decode;
//! - `decoder_model.onnx` (the first step, the whole forced prefix):
//!   `input_ids` `[batch_size, decoder_sequence_length]`,
//!   `encoder_hidden_states` -> `logits` and the whole cache,
//!   `present.{i}.decoder.key/value` (self-attention) and
//!   `present.{i}.encoder.key/value` (cross-attention);
//! - `decoder_with_past_model.onnx` (later steps): `input_ids` and
//!   `past_key_values.{i}.{decoder,encoder}.{key,value}` -> `logits` and the
//!   grown `present.{i}.decoder.key/value`.
//!
//! Decoder positions continue from the cached length. The forced prefix,
//! token suppression and timestamp rules stay in the skill, shared with the
//! candle path. Layer norms use `nn.LayerNorm`'s 1e-5; keys have no bias;
//! the head is the token embedding unless `proj_out.weight` is stored.

use super::builder::{attr_int, attr_ints, Dim, GraphBuilder};
use super::decoder_io::kv_dims;
use super::layers::{activation, attention, layer_norm, linear, split_heads, weight_as_is};
use super::proto::{data_type, ModelProto};
use super::seq2seq_io::{decoder_inputs, decoder_outputs, BATCH, ENC_SEQ};
use super::weights::Weights;
use super::OnnxError;

use ipfs_accelerate_models::layers::activation::Activation;
pub use ipfs_accelerate_models::whisper::{WhisperConfig, MODEL_TYPE};

const LAYER_NORM_EPS: f64 = 1e-5;

/// Builds the three graphs: encoder, decoder, decoder with past.
pub fn build(model: &str, cfg: &WhisperConfig, w: &Weights) -> Result<[ModelProto; 3], OnnxError> {
    if cfg.scale_embedding {
        return Err(OnnxError::unsupported(
            model,
            "scale_embedding = true (no released Whisper uses it)".to_owned(),
        ));
    }
    for (what, heads) in [
        ("encoder", cfg.encoder_attention_heads),
        ("decoder", cfg.decoder_attention_heads),
    ] {
        if heads == 0 || !cfg.d_model.is_multiple_of(heads) {
            return Err(OnnxError::unsupported(
                model,
                format!(
                    "d_model {} is not a multiple of the {what}'s {heads} heads",
                    cfg.d_model
                ),
            ));
        }
    }
    Ok([
        encoder(cfg, w)?,
        decoder(cfg, w, false)?,
        decoder(cfg, w, true)?,
    ])
}

/// Attention projections: query (scaled, as transformers scales it),
/// key (no bias) and value of `x` (keys and values of `kv_from`, when
/// given), heads split.
fn projections(
    g: &mut GraphBuilder,
    w: &Weights,
    p: &str,
    (d, heads): (usize, usize),
    x: &str,
    kv_from: Option<&str>,
) -> Result<[String; 3], OnnxError> {
    let head_dim = d / heads;
    let q = linear(g, w, x, &format!("{p}.q_proj"), (d, d), true)?;
    let scale = g.float((head_dim as f32).powf(-0.5));
    let q = g.op("Mul", &[&q, &scale], vec![]);
    let mut out = [
        split_heads(g, &q, heads, head_dim),
        String::new(),
        String::new(),
    ];
    if let Some(source) = kv_from {
        [out[1], out[2]] = keys_values(g, w, p, (d, heads), source)?;
    }
    Ok(out)
}

/// An attention's keys (no bias) and values of `source`, heads split: a
/// layer's own, or (from the encoder output) a decoder layer's
/// cross-attention cache.
fn keys_values(
    g: &mut GraphBuilder,
    w: &Weights,
    p: &str,
    (d, heads): (usize, usize),
    source: &str,
) -> Result<[String; 2], OnnxError> {
    let head_dim = d / heads;
    let k = linear(g, w, source, &format!("{p}.k_proj"), (d, d), false)?;
    let v = linear(g, w, source, &format!("{p}.v_proj"), (d, d), true)?;
    Ok([
        split_heads(g, &k, heads, head_dim),
        split_heads(g, &v, heads, head_dim),
    ])
}

/// `softmax(q kᵀ [+ bias]) v`, heads merged, through `out_proj`.
fn attend(
    g: &mut GraphBuilder,
    w: &Weights,
    p: &str,
    d: usize,
    q: &str,
    (k, v): (&str, &str),
    bias: Option<&str>,
) -> Result<String, OnnxError> {
    let ctx = attention(g, q, (k, v), bias, d);
    linear(g, w, &ctx, &format!("{p}.out_proj"), (d, d), true)
}

/// `nn.LayerNorm` with Whisper's epsilon.
fn norm(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    d: usize,
) -> Result<String, OnnxError> {
    layer_norm(g, w, x, prefix, d, LAYER_NORM_EPS)
}

/// The feed-forward sub-layer with its norm and residual.
fn feed_forward(
    g: &mut GraphBuilder,
    w: &Weights,
    cfg: &WhisperConfig,
    p: &str,
    ffn: usize,
    x: &str,
) -> Result<String, OnnxError> {
    let d = cfg.d_model;
    let h = layer_norm(g, w, x, &format!("{p}.final_layer_norm"), d, LAYER_NORM_EPS)?;
    let up = linear(g, w, &h, &format!("{p}.fc1"), (d, ffn), true)?;
    let act = activation(g, &up, cfg.activation_function);
    let down = linear(g, w, &act, &format!("{p}.fc2"), (ffn, d), true)?;
    Ok(g.op("Add", &[x, &down], vec![]))
}

fn encoder(cfg: &WhisperConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    let (d, heads) = (cfg.d_model, cfg.encoder_attention_heads);
    let mut g = GraphBuilder::new();
    let features = g.input(
        "input_features",
        data_type::FLOAT,
        &[
            Dim::named(BATCH),
            Dim::Fixed(cfg.num_mel_bins as i64),
            Dim::named("feature_size"),
        ],
    );
    g.set_scope("/encoder/conv");
    let mut x = features;
    for (name, (inp, stride)) in [("conv1", (cfg.num_mel_bins, 1)), ("conv2", (d, 2))] {
        let p = format!("model.encoder.{name}");
        let weight = weight_as_is(&mut g, w, &format!("{p}.weight"), &[d, inp, 3])?;
        let bias = weight_as_is(&mut g, w, &format!("{p}.bias"), &[d])?;
        x = g.op(
            "Conv",
            &[&x, &weight, &bias],
            vec![
                attr_ints("kernel_shape", &[3]),
                attr_ints("pads", &[1, 1]),
                attr_ints("strides", &[stride]),
            ],
        );
        // transformers applies the exact GELU here, whatever
        // `activation_function` says (that one is the MLPs').
        x = activation(&mut g, &x, Activation::Gelu);
    }
    let x = g.op("Transpose", &[&x], vec![attr_ints("perm", &[0, 2, 1])]);
    // 30 s of features give exactly max_source_positions positions.
    let positions = weight_as_is(
        &mut g,
        w,
        "model.encoder.embed_positions.weight",
        &[cfg.max_source_positions, d],
    )?;
    let mut x = g.op("Add", &[&x, &positions], vec![]);
    for i in 0..cfg.encoder_layers {
        let p = format!("model.encoder.layers.{i}");
        g.set_scope(format!("/encoder/layers.{i}/self_attn"));
        let h = norm(&mut g, w, &x, &format!("{p}.self_attn_layer_norm"), d)?;
        let attn = format!("{p}.self_attn");
        let [q, k, v] = projections(&mut g, w, &attn, (d, heads), &h, Some(&h))?;
        let out = attend(&mut g, w, &attn, d, &q, (&k, &v), None)?;
        x = g.op("Add", &[&x, &out], vec![]);
        g.set_scope(format!("/encoder/layers.{i}/mlp"));
        x = feed_forward(&mut g, w, cfg, &p, cfg.encoder_ffn_dim, &x)?;
    }
    g.set_scope("/encoder/layer_norm");
    let x = layer_norm(&mut g, w, &x, "model.encoder.layer_norm", d, LAYER_NORM_EPS)?;
    // Each decoder layer's cross-attention keys and values, as the first
    // decoder step would return them: with these the with-past graph can
    // run the first step too (an empty self-attention cache), and the
    // runtime need not load the first-step graph, a second copy of the
    // decoder's weights (docs/onnx-export.md).
    let (dec_heads, dec_head_dim) = (cfg.decoder_attention_heads, d / cfg.decoder_attention_heads);
    let mut cross = Vec::with_capacity(cfg.decoder_layers);
    for i in 0..cfg.decoder_layers {
        g.set_scope(format!("/encoder/cross_kv.{i}"));
        let p = format!("model.decoder.layers.{i}.encoder_attn");
        cross.push(keys_values(&mut g, w, &p, (d, dec_heads), &x)?);
    }
    g.set_scope("");
    g.output(
        &x,
        "last_hidden_state",
        data_type::FLOAT,
        &[Dim::named(BATCH), Dim::named(ENC_SEQ), Dim::Fixed(d as i64)],
    );
    for (i, [k, v]) in cross.iter().enumerate() {
        for (value, part) in [(k, "key"), (v, "value")] {
            g.output(
                value,
                &format!("present.{i}.encoder.{part}"),
                data_type::FLOAT,
                &kv_dims(dec_heads, dec_head_dim, ENC_SEQ),
            );
        }
    }
    Ok(g.finish(
        "whisper_encoder",
        "Whisper encoder exported from safetensors by ipfs-accelerate",
    ))
}

/// The decoder's first step (`with_past` false: the encoder output in,
/// the whole cache out) or a later step (the cache in, the grown
/// self-attention cache out).
fn decoder(cfg: &WhisperConfig, w: &Weights, with_past: bool) -> Result<ModelProto, OnnxError> {
    let (d, heads, layers) = (cfg.d_model, cfg.decoder_attention_heads, cfg.decoder_layers);
    let head_dim = d / heads;
    let mut g = GraphBuilder::new();
    let io = decoder_inputs(&mut g, (layers, heads, head_dim, d), with_past, false);
    let (past, encoded) = (&io.past, &io.encoder_hidden_states);

    g.set_scope("/decoder/embeddings");
    let embed = weight_as_is(
        &mut g,
        w,
        "model.decoder.embed_tokens.weight",
        &[cfg.vocab_size, d],
    )?;
    let tokens = g.op(
        "Gather",
        &[&embed, &io.input_ids],
        vec![attr_int("axis", 0)],
    );
    let positions = weight_as_is(
        &mut g,
        w,
        "model.decoder.embed_positions.weight",
        &[cfg.max_target_positions, d],
    )?;
    let pos = g.op(
        "Gather",
        &[&positions, &io.positions],
        vec![attr_int("axis", 0)],
    );
    let mut x = g.op("Add", &[&tokens, &pos], vec![]);
    let causal = io.causal.clone();

    let mut present = Vec::with_capacity(layers);
    for i in 0..layers {
        let p = format!("model.decoder.layers.{i}");
        g.set_scope(format!("/decoder/layers.{i}/self_attn"));
        let h = norm(&mut g, w, &x, &format!("{p}.self_attn_layer_norm"), d)?;
        let attn = format!("{p}.self_attn");
        let [q, k, v] = projections(&mut g, w, &attn, (d, heads), &h, Some(&h))?;
        let (k, v) = match past.get(i) {
            Some(cached) => (
                g.op("Concat", &[&cached[0], &k], vec![attr_int("axis", 2)]),
                g.op("Concat", &[&cached[1], &v], vec![attr_int("axis", 2)]),
            ),
            None => (k, v),
        };
        let out = attend(&mut g, w, &attn, d, &q, (&k, &v), Some(&causal))?;
        x = g.op("Add", &[&x, &out], vec![]);

        g.set_scope(format!("/decoder/layers.{i}/encoder_attn"));
        let h = norm(&mut g, w, &x, &format!("{p}.encoder_attn_layer_norm"), d)?;
        let attn = format!("{p}.encoder_attn");
        // The first step projects the encoder output; later steps take
        // those keys and values from the cache.
        let (q, ck, cv) = match past.get(i) {
            Some(cached) => {
                let [q, _, _] = projections(&mut g, w, &attn, (d, heads), &h, None)?;
                (q, cached[2].clone(), cached[3].clone())
            }
            None => {
                let [q, k, v] = projections(&mut g, w, &attn, (d, heads), &h, encoded.as_deref())?;
                (q, k, v)
            }
        };
        let out = attend(&mut g, w, &attn, d, &q, (&ck, &cv), None)?;
        x = g.op("Add", &[&x, &out], vec![]);

        g.set_scope(format!("/decoder/layers.{i}/mlp"));
        x = feed_forward(&mut g, w, cfg, &p, cfg.decoder_ffn_dim, &x)?;
        present.push([k, v, ck, cv]);
    }
    g.set_scope("/decoder/layer_norm");
    let x = layer_norm(&mut g, w, &x, "model.decoder.layer_norm", d, LAYER_NORM_EPS)?;
    g.set_scope("/proj_out");
    let logits = if w.has("proj_out.weight") {
        linear(&mut g, w, &x, "proj_out", (d, cfg.vocab_size), false)?
    } else {
        // Tied: a Transpose of the one embedding initializer.
        let head = g.op("Transpose", &[&embed], vec![attr_ints("perm", &[1, 0])]);
        g.op("MatMul", &[&x, &head], vec![])
    };
    decoder_outputs(
        &mut g,
        (&logits, cfg.vocab_size),
        &present,
        (heads, head_dim),
        with_past,
    );
    let name = if with_past {
        "whisper_decoder_with_past"
    } else {
        "whisper_decoder"
    };
    Ok(g.finish(
        name,
        "Whisper decoder exported from safetensors by ipfs-accelerate",
    ))
}
