//! CLIP (`CLIPModel`) as optimum's `zero-shot-image-classification`
//! export: one graph taking `input_ids` and `attention_mask` `[text_batch_size,
//! sequence_length]` and `pixel_values` `[image_batch_size, channels, height,
//! width]`, returning `logits_per_image` `[image_batch_size, text_batch_size]`,
//! `logits_per_text`, and the L2-normalised `text_embeds` and
//! `image_embeds`.
//!
//! As `CLIPModel`: pre-LN encoder layers (query scaled by `head_dim^-0.5`);
//! the text tower causal and padding-masked, pooled at the first
//! `eos_token_id` (at the largest id for legacy configs whose `eos_token_id`
//! is 2); the vision tower's patches from a strided convolution, the class
//! embedding first, `pre_layrnorm`, pooled at the class position through
//! `post_layernorm`; bias-free projections; logits scaled by
//! `exp(logit_scale)`.

use super::builder::{attr_int, attr_ints, Dim, GraphBuilder};
use super::layers::{
    attention, causal_bias, dim_scalar, feed_forward, l2_normalize, layer_norm, linear,
    split_heads, weight_as_is,
};
use super::proto::{data_type, ModelProto};
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::clip::{ClipConfig, ClipTextConfig, ClipVisionConfig, MODEL_TYPE};
use ipfs_accelerate_models::layers::activation::Activation;

const TEXTS: &str = "text_batch_size";
const IMAGES: &str = "image_batch_size";
const SEQ: &str = "sequence_length";

/// One tower's layer shape.
pub(crate) struct Tower {
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub eps: f64,
    pub act: Activation,
}

impl Tower {
    /// The layers of a CLIP vision tower.
    pub(crate) fn vision(vc: &ClipVisionConfig) -> Self {
        Self {
            hidden: vc.hidden_size,
            ffn: vc.intermediate_size,
            heads: vc.num_attention_heads,
            eps: vc.layer_norm_eps,
            act: vc.hidden_act,
        }
    }
}

/// The pre-LN encoder layers `{prefix}.layers.{i}` over `x` `[b, s, d]`,
/// with an additive attention `bias` (text) or none (vision): the output.
pub(crate) fn encoder(
    g: &mut GraphBuilder,
    w: &Weights,
    (prefix, layers): (&str, usize),
    t: &Tower,
    x: String,
    bias: Option<&str>,
) -> Result<String, OnnxError> {
    let mut states = encoder_states(g, w, (prefix, layers), t, x, bias)?;
    Ok(states.pop().unwrap_or_default())
}

/// [`encoder`]'s input and every layer's output, in order (transformers'
/// `hidden_states`).
fn encoder_states(
    g: &mut GraphBuilder,
    w: &Weights,
    (prefix, layers): (&str, usize),
    t: &Tower,
    mut x: String,
    bias: Option<&str>,
) -> Result<Vec<String>, OnnxError> {
    let mut states = vec![x.clone()];
    for i in 0..layers {
        let l = format!("{prefix}.layers.{i}");
        g.set_scope(format!("/{prefix}/layers.{i}/self_attn"));
        x = attention_block(g, w, &l, t, &x, bias)?;
        g.set_scope(format!("/{prefix}/layers.{i}/mlp"));
        x = mlp_block(g, w, &l, t, &x)?;
        states.push(x.clone());
    }
    Ok(states)
}

/// `x + self_attn(layer_norm1(x))` of the pre-LN layer `{l}` (query scaled
/// by `head_dim^-0.5`), with an additive attention `bias` or none.
pub(crate) fn attention_block(
    g: &mut GraphBuilder,
    w: &Weights,
    l: &str,
    t: &Tower,
    x: &str,
    bias: Option<&str>,
) -> Result<String, OnnxError> {
    let h = layer_norm(g, w, x, &format!("{l}.layer_norm1"), t.hidden, t.eps)?;
    let out = self_attention(g, w, &h, &format!("{l}.self_attn"), t, bias)?;
    Ok(g.op("Add", &[x, &out], vec![]))
}

/// CLIP's attention `{prefix}.{q,k,v,out}_proj` (all with bias) of `h` on
/// itself.
pub(crate) fn self_attention(
    g: &mut GraphBuilder,
    w: &Weights,
    h: &str,
    prefix: &str,
    t: &Tower,
    bias: Option<&str>,
) -> Result<String, OnnxError> {
    let (d, heads) = (t.hidden, t.heads);
    let head_dim = d / heads;
    let scale = g.float((head_dim as f32).powf(-0.5));
    let p = |n: &str| format!("{prefix}.{n}");
    let q = linear(g, w, h, &p("q_proj"), (d, d), true)?;
    let q = g.op("Mul", &[&q, &scale], vec![]);
    let k = linear(g, w, h, &p("k_proj"), (d, d), true)?;
    let v = linear(g, w, h, &p("v_proj"), (d, d), true)?;
    let (q, k, v) = (
        split_heads(g, &q, heads, head_dim),
        split_heads(g, &k, heads, head_dim),
        split_heads(g, &v, heads, head_dim),
    );
    let ctx = attention(g, &q, (&k, &v), bias, d);
    linear(g, w, &ctx, &p("out_proj"), (d, d), true)
}

/// `x + mlp(layer_norm2(x))` of the pre-LN layer `{l}`.
pub(crate) fn mlp_block(
    g: &mut GraphBuilder,
    w: &Weights,
    l: &str,
    t: &Tower,
    x: &str,
) -> Result<String, OnnxError> {
    let d = t.hidden;
    let h = layer_norm(g, w, x, &format!("{l}.layer_norm2"), d, t.eps)?;
    let (up, down) = (format!("{l}.mlp.fc1"), format!("{l}.mlp.fc2"));
    let down = feed_forward(g, w, &h, (&up, &down), (d, t.ffn, d), (t.act, true))?;
    Ok(g.op("Add", &[x, &down], vec![]))
}

/// Builds the graph.
pub fn build(model: &str, cfg: &ClipConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    let (tc, vc) = (&cfg.text_config, &cfg.vision_config);
    // Heads dividing each tower's width: checked when the config was
    // parsed (`CheckConfig`).
    if vc.patch_size == 0 || !vc.image_size.is_multiple_of(vc.patch_size) {
        return Err(OnnxError::unsupported(
            model,
            format!(
                "image_size {} is not a multiple of patch_size {}",
                vc.image_size, vc.patch_size
            ),
        ));
    }
    let mut g = GraphBuilder::new();
    let text_dims = [Dim::named(TEXTS), Dim::named(SEQ)];
    let ids = g.input("input_ids", data_type::INT64, &text_dims);
    let mask = g.input("attention_mask", data_type::INT64, &text_dims);
    let pixels = g.input(
        "pixel_values",
        data_type::FLOAT,
        &[
            Dim::named(IMAGES),
            Dim::Fixed(vc.num_channels as i64),
            Dim::Fixed(vc.image_size as i64),
            Dim::Fixed(vc.image_size as i64),
        ],
    );

    // Text tower.
    let (x, len) = text_hidden(&mut g, w, tc, (&ids, &mask))?;
    let d = tc.hidden_size;
    // The pooled position: the first eos, or (legacy eos id 2) the
    // largest id; both are ArgMax's first index, as torch's argmax.
    let to_int32 = vec![attr_int("to", i64::from(data_type::INT32))];
    let keyed = if tc.eos_token_id == 2 {
        g.op("Cast", &[&ids], to_int32)
    } else {
        let eos = g.int(i64::from(tc.eos_token_id));
        let is_eos = g.op("Equal", &[&ids, &eos], vec![]);
        g.op("Cast", &[&is_eos], to_int32)
    };
    let pooled = pool_at_argmax(&mut g, &x, &keyed, &len);
    let proj = cfg.projection_dim;
    let text = linear(&mut g, w, &pooled, "text_projection", (d, proj), false)?;
    let text_embeds = l2_normalize(&mut g, &text);

    // Vision tower.
    let dv = vc.hidden_size;
    let states = vision_states(&mut g, w, "vision_model", vc, &pixels, vc.num_hidden_layers)?;
    let x = states.last().cloned().unwrap_or_default();
    g.set_scope("/vision_model/pooler");
    let z = g.int(0);
    let first = g.op("Gather", &[&x, &z], vec![attr_int("axis", 1)]);
    let first = layer_norm(
        &mut g,
        w,
        &first,
        "vision_model.post_layernorm",
        dv,
        vc.layer_norm_eps,
    )?;
    let image = linear(&mut g, w, &first, "visual_projection", (dv, proj), false)?;
    let image_embeds = l2_normalize(&mut g, &image);

    g.set_scope("/logits");
    let logit_scale = w.get("logit_scale", &[])?;
    let scale = g.float(logit_scale.first().copied().unwrap_or_default().exp());
    let image_t = g.op(
        "Transpose",
        &[&image_embeds],
        vec![attr_ints("perm", &[1, 0])],
    );
    let per_text = g.op("MatMul", &[&text_embeds, &image_t], vec![]);
    let per_text = g.op("Mul", &[&per_text, &scale], vec![]);
    let per_image = g.op("Transpose", &[&per_text], vec![attr_ints("perm", &[1, 0])]);
    g.set_scope("");
    g.output(
        &per_image,
        "logits_per_image",
        data_type::FLOAT,
        &[Dim::named(IMAGES), Dim::named(TEXTS)],
    );
    g.output(
        &per_text,
        "logits_per_text",
        data_type::FLOAT,
        &[Dim::named(TEXTS), Dim::named(IMAGES)],
    );
    g.output(
        &text_embeds,
        "text_embeds",
        data_type::FLOAT,
        &[Dim::named(TEXTS), Dim::Fixed(proj as i64)],
    );
    g.output(
        &image_embeds,
        "image_embeds",
        data_type::FLOAT,
        &[Dim::named(IMAGES), Dim::Fixed(proj as i64)],
    );
    Ok(g.finish(
        MODEL_TYPE,
        "CLIP (text and vision towers, projections, scaled logits) exported from safetensors by ipfs-accelerate",
    ))
}

/// The CLIP vision tower under `prefix` (`vision_model`; LLaVA's
/// `vision_tower.vision_model`) over `pixels`: the states after
/// `pre_layrnorm` and after each of the first `layers` layers
/// (transformers' `hidden_states`).
pub(crate) fn vision_states(
    g: &mut GraphBuilder,
    w: &Weights,
    prefix: &str,
    vc: &ClipVisionConfig,
    pixels: &str,
    layers: usize,
) -> Result<Vec<String>, OnnxError> {
    let x = vision_embeddings(g, w, prefix, vc, pixels)?;
    let dv = vc.hidden_size;
    // transformers' attribute name has the typo.
    let x = layer_norm(
        g,
        w,
        &x,
        &format!("{prefix}.pre_layrnorm"),
        dv,
        vc.layer_norm_eps,
    )?;
    let tower = Tower::vision(vc);
    encoder_states(
        g,
        w,
        (&format!("{prefix}.encoder"), layers),
        &tower,
        x,
        None,
    )
}

/// CLIP's vision embeddings under `{prefix}.embeddings` of `pixels` `[b, c,
/// side, side]`: the class embedding, then the patches of a strided
/// convolution, plus positions; `[b, patches + 1, hidden]`.
pub(crate) fn vision_embeddings(
    g: &mut GraphBuilder,
    w: &Weights,
    prefix: &str,
    vc: &ClipVisionConfig,
    pixels: &str,
) -> Result<String, OnnxError> {
    g.set_scope(format!("/{prefix}/embeddings"));
    let dv = vc.hidden_size;
    let (p, side) = (vc.patch_size, vc.image_size);
    let patch = weight_as_is(
        g,
        w,
        &format!("{prefix}.embeddings.patch_embedding.weight"),
        &[dv, vc.num_channels, p, p],
    )?;
    let patches = g.op(
        "Conv",
        &[pixels, &patch],
        vec![
            attr_ints("kernel_shape", &[p as i64, p as i64]),
            attr_ints("strides", &[p as i64, p as i64]),
        ],
    );
    let count = (side / p) * (side / p);
    let flat = g.ints(&[0, dv as i64, count as i64]);
    let patches = g.op("Reshape", &[&patches, &flat], vec![]);
    let patches = g.op(
        "Transpose",
        &[&patches],
        vec![attr_ints("perm", &[0, 2, 1])],
    );
    let class_name = format!("{prefix}.embeddings.class_embedding");
    let class = w.get(&class_name, &[dv])?;
    let class = g.weight(&class_name, &[1, 1, dv], &class);
    let batch = g.op(
        "Shape",
        &[pixels],
        vec![attr_int("start", 0), attr_int("end", 1)],
    );
    let rest = g.ints(&[1, dv as i64]);
    let class_shape = g.op("Concat", &[&batch, &rest], vec![attr_int("axis", 0)]);
    let class = g.op("Expand", &[&class, &class_shape], vec![]);
    let x = g.op("Concat", &[&class, &patches], vec![attr_int("axis", 1)]);
    let vpos = weight_as_is(
        g,
        w,
        &format!("{prefix}.embeddings.position_embedding.weight"),
        &[count + 1, dv],
    )?;
    let x = g.op("Add", &[&x, &vpos], vec![]);
    Ok(x)
}

/// The CLIP text tower `text_model` over `ids` and `mask` `[b, s]`
/// (causal and padding-masked): the states after `final_layer_norm`
/// `[b, s, hidden]`, and `s` as a 0-D int64.
pub(crate) fn text_hidden(
    g: &mut GraphBuilder,
    w: &Weights,
    tc: &ClipTextConfig,
    (ids, mask): (&str, &str),
) -> Result<(String, String), OnnxError> {
    g.set_scope("/text_model/embeddings");
    let d = tc.hidden_size;
    let tokens = weight_as_is(
        g,
        w,
        "text_model.embeddings.token_embedding.weight",
        &[tc.vocab_size, d],
    )?;
    let positions = weight_as_is(
        g,
        w,
        "text_model.embeddings.position_embedding.weight",
        &[tc.max_position_embeddings, d],
    )?;
    let x = g.op("Gather", &[&tokens, ids], vec![attr_int("axis", 0)]);
    let seq = g.op(
        "Shape",
        &[ids],
        vec![attr_int("start", 1), attr_int("end", 2)],
    );
    let (zero, axis0) = (g.ints(&[0]), g.ints(&[0]));
    let pos = g.op("Slice", &[&positions, &zero, &seq, &axis0], vec![]);
    let x = g.op("Add", &[&x, &pos], vec![]);
    g.set_scope("/text_model/mask");
    let len = dim_scalar(g, ids, 1);
    let no_past = g.int(0);
    let bias = causal_bias(g, mask, &no_past, &len);
    let text_tower = Tower {
        hidden: d,
        ffn: tc.intermediate_size,
        heads: tc.num_attention_heads,
        eps: tc.layer_norm_eps,
        act: tc.hidden_act,
    };
    let x = encoder(
        g,
        w,
        ("text_model.encoder", tc.num_hidden_layers),
        &text_tower,
        x,
        Some(&bias),
    )?;
    g.set_scope("/text_model/pooler");
    let x = layer_norm(
        g,
        w,
        &x,
        "text_model.final_layer_norm",
        d,
        tc.layer_norm_eps,
    )?;
    Ok((x, len))
}

/// The row of `x` `[b, s, d]` at the first largest value of `keyed` `[b,
/// s]` (torch's argmax), for each `b`: `[b, d]`. `len` is `s` (0-D).
pub(crate) fn pool_at_argmax(g: &mut GraphBuilder, x: &str, keyed: &str, len: &str) -> String {
    let at = g.op(
        "ArgMax",
        &[keyed],
        vec![attr_int("axis", -1), attr_int("keepdims", 1)],
    );
    // One-hot rows `[b, 1, s]` times the hidden states `[b, s, d]`.
    let (z, one) = (g.int(0), g.int(1));
    let steps = g.op("Range", &[&z, len, &one], vec![]);
    let hit = g.op("Equal", &[&steps, &at], vec![]);
    let pick = g.op(
        "Cast",
        &[&hit],
        vec![attr_int("to", i64::from(data_type::FLOAT))],
    );
    let ax1 = g.ints(&[1]);
    let pick = g.op("Unsqueeze", &[&pick, &ax1], vec![]);
    let pooled = g.op("MatMul", &[&pick, x], vec![]);
    g.op("Squeeze", &[&pooled, &ax1], vec![])
}
