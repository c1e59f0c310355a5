//! X-CLIP (`XCLIPModel`) as one graph, in the shape of optimum's CLIP
//! export: `input_ids` and `attention_mask` `[text_batch_size,
//! sequence_length]` and `pixel_values` `[video_batch_size, num_frames,
//! channels, height, width]` give `logits_per_video` `[video_batch_size,
//! text_batch_size]`, `logits_per_text`, the normalised `video_embeds`
//! `[video_batch_size, projection_dim]` and `text_embeds`
//! `[video_batch_size, text_batch_size, projection_dim]` (each video prompts
//! the texts it is compared with).
//!
//! As `XCLIPModel`: the CLIP text tower pooled at the largest id (over the
//! unpadded tokens, as one text alone gives it) and projected; each frame
//! through the CLIP vision tower whose layers first exchange one message
//! token per frame across the video (cross-frame communication); the class
//! states projected and through the multi-frame integration transformer
//! (MIT), averaged over frames; the patch states normed, projected and
//! averaged over frames, prompting the text features through the prompt
//! generator's cross-attention layers; logits scaled by
//! `exp(logit_scale)`.

use super::builder::{attr_int, attr_ints, Dim, GraphBuilder};
use super::clip::{
    attention_block, encoder, mlp_block, pool_at_argmax, self_attention, text_hidden,
    vision_embeddings, Tower,
};
use super::layers::{
    attention, feed_forward, l2_normalize, layer_norm, linear, split_heads, weight_as_is,
};
use super::proto::{data_type, ModelProto};
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::xclip::{XClipConfig, MODEL_TYPE};

const TEXTS: &str = "text_batch_size";
const VIDEOS: &str = "video_batch_size";
const SEQ: &str = "sequence_length";

/// Builds the graph.
pub fn build(model: &str, cfg: &XClipConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    cfg.check()
        .map_err(|e| OnnxError::unsupported(model, e.to_string()))?;
    // Heads dividing the towers' widths: checked when the config was
    // parsed (`CheckConfig`); `check` adds what the graph relies on (MIT as
    // wide as the projection).
    let (tc, vc) = (&cfg.text_config, &cfg.vision_config);
    let proj = cfg.projection_dim;
    let frames = vc.num_frames;
    let mut g = GraphBuilder::new();
    let text_dims = [Dim::named(TEXTS), Dim::named(SEQ)];
    let ids = g.input("input_ids", data_type::INT64, &text_dims);
    let mask = g.input("attention_mask", data_type::INT64, &text_dims);
    let side = vc.image_size as i64;
    let pixels = g.input(
        "pixel_values",
        data_type::FLOAT,
        &[
            Dim::named(VIDEOS),
            Dim::Fixed(frames as i64),
            Dim::Fixed(vc.num_channels as i64),
            Dim::Fixed(side),
            Dim::Fixed(side),
        ],
    );

    // Text features: the largest id's state over the real tokens (pads
    // masked to 0, so a large pad id is never picked).
    let (x, len) = text_hidden(&mut g, w, tc, (&ids, &mask))?;
    let real = g.op("Mul", &[&ids, &mask], vec![]);
    let real = g.op(
        "Cast",
        &[&real],
        vec![attr_int("to", i64::from(data_type::INT32))],
    );
    let pooled = pool_at_argmax(&mut g, &x, &real, &len);
    let d = tc.hidden_size;
    let text = linear(&mut g, w, &pooled, "text_projection", (d, proj), false)?;

    // Frames through the vision tower with cross-frame messages.
    let clip_vision = vc.clip();
    let dv = vc.hidden_size;
    let shape = g.ints(&[-1, vc.num_channels as i64, side, side]);
    let frame_pixels = g.op("Reshape", &[&pixels, &shape], vec![]);
    let x = vision_embeddings(&mut g, w, "vision_model", &clip_vision, &frame_pixels)?;
    let mut x = layer_norm(
        &mut g,
        w,
        &x,
        "vision_model.pre_layernorm",
        dv,
        vc.layer_norm_eps,
    )?;
    let tower = Tower::vision(&clip_vision);
    let tokens = (vc.image_size / vc.patch_size).pow(2) + 1;
    let zero = g.int(0);
    for i in 0..vc.num_hidden_layers {
        let l = format!("vision_model.encoder.layers.{i}");
        g.set_scope(format!("/vision_model/layers.{i}/message"));
        let class = g.op("Gather", &[&x, &zero], vec![attr_int("axis", 1)]);
        let message = linear(
            &mut g,
            w,
            &class,
            &format!("{l}.message_fc"),
            (dv, dv),
            true,
        )?;
        let shape = g.ints(&[-1, frames as i64, dv as i64]);
        let message = g.op("Reshape", &[&message, &shape], vec![]);
        let h = layer_norm(
            &mut g,
            w,
            &message,
            &format!("{l}.message_ln"),
            dv,
            vc.layer_norm_eps,
        )?;
        let exchanged = self_attention(&mut g, w, &h, &format!("{l}.message_attn"), &tower, None)?;
        let message = g.op("Add", &[&message, &exchanged], vec![]);
        let shape = g.ints(&[-1, 1, dv as i64]);
        let message = g.op("Reshape", &[&message, &shape], vec![]);
        let with_message = g.op("Concat", &[&x, &message], vec![attr_int("axis", 1)]);
        g.set_scope(format!("/vision_model/layers.{i}/self_attn"));
        let attended = attention_block(&mut g, w, &l, &tower, &with_message, None)?;
        let (lo, hi, axis) = (g.ints(&[0]), g.ints(&[tokens as i64]), g.ints(&[1]));
        let attended = g.op("Slice", &[&attended, &lo, &hi, &axis], vec![]);
        g.set_scope(format!("/vision_model/layers.{i}/mlp"));
        x = mlp_block(&mut g, w, &l, &tower, &attended)?;
    }
    g.set_scope("/vision_model/pooler");
    let class = g.op("Gather", &[&x, &zero], vec![attr_int("axis", 1)]);
    let class = layer_norm(
        &mut g,
        w,
        &class,
        "vision_model.post_layernorm",
        dv,
        vc.layer_norm_eps,
    )?;
    let class = linear(&mut g, w, &class, "visual_projection", (dv, proj), false)?;
    let shape = g.ints(&[-1, frames as i64, proj as i64]);
    let class = g.op("Reshape", &[&class, &shape], vec![]);

    // MIT over the frames' class features, averaged.
    g.set_scope("/mit");
    let positions = weight_as_is(&mut g, w, "mit.position_embedding", &[1, frames, proj])?;
    let h = g.op("Add", &[&class, &positions], vec![]);
    let mit = Tower {
        hidden: proj,
        ffn: vc.mit_intermediate_size,
        heads: vc.mit_num_attention_heads,
        eps: vc.layer_norm_eps,
        act: vc.hidden_act,
    };
    let h = encoder(
        &mut g,
        w,
        ("mit.encoder", vc.mit_num_hidden_layers),
        &mit,
        h,
        None,
    )?;
    let h = g.op("Add", &[&h, &class], vec![]);
    let video = g.op(
        "ReduceMean",
        &[&h],
        vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
    );

    // The patches' features, averaged over frames: [videos, patches, proj].
    g.set_scope("/prompts_visual");
    let patches = tokens - 1;
    let (lo, hi, axis) = (g.ints(&[1]), g.ints(&[tokens as i64]), g.ints(&[1]));
    let patch_states = g.op("Slice", &[&x, &lo, &hi, &axis], vec![]);
    let patch_states = layer_norm(
        &mut g,
        w,
        &patch_states,
        "prompts_visual_layernorm",
        dv,
        vc.layer_norm_eps,
    )?;
    let projection = weight_as_is(&mut g, w, "prompts_visual_projection", &[dv, proj])?;
    let patch_features = g.op("MatMul", &[&patch_states, &projection], vec![]);
    let shape = g.ints(&[-1, frames as i64, patches as i64, proj as i64]);
    let patch_features = g.op("Reshape", &[&patch_features, &shape], vec![]);
    let patch_features = g.op(
        "ReduceMean",
        &[&patch_features],
        vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
    );

    // The texts, once per video, prompted by its patches.
    g.set_scope("/prompts_generator");
    let videos = g.op(
        "Shape",
        &[&pixels],
        vec![attr_int("start", 0), attr_int("end", 1)],
    );
    let text_rows = g.op("Shape", &[&text], vec![]);
    let repeated = g.op("Concat", &[&videos, &text_rows], vec![attr_int("axis", 0)]);
    let ax0 = g.ints(&[0]);
    let text = g.op("Unsqueeze", &[&text, &ax0], vec![]);
    let text = g.op("Expand", &[&text, &repeated], vec![]);
    let prompt = prompt_generator(&mut g, w, cfg, &text, &patch_features)?;
    let text = g.op("Add", &[&text, &prompt], vec![]);

    g.set_scope("/logits");
    let video_embeds = l2_normalize(&mut g, &video);
    let text_embeds = l2_normalize(&mut g, &text);
    let ax2 = g.ints(&[2]);
    let column = g.op("Unsqueeze", &[&video_embeds, &ax2], vec![]);
    let per_video = g.op("MatMul", &[&text_embeds, &column], vec![]);
    let per_video = g.op("Squeeze", &[&per_video, &ax2], vec![]);
    let logit_scale = w.get("logit_scale", &[])?;
    let scale = g.float(logit_scale.first().copied().unwrap_or_default().exp());
    let per_video = g.op("Mul", &[&per_video, &scale], vec![]);
    let per_text = g.op("Transpose", &[&per_video], vec![attr_ints("perm", &[1, 0])]);
    g.set_scope("");
    g.output(
        &per_video,
        "logits_per_video",
        data_type::FLOAT,
        &[Dim::named(VIDEOS), Dim::named(TEXTS)],
    );
    g.output(
        &per_text,
        "logits_per_text",
        data_type::FLOAT,
        &[Dim::named(TEXTS), Dim::named(VIDEOS)],
    );
    g.output(
        &text_embeds,
        "text_embeds",
        data_type::FLOAT,
        &[
            Dim::named(VIDEOS),
            Dim::named(TEXTS),
            Dim::Fixed(proj as i64),
        ],
    );
    g.output(
        &video_embeds,
        "video_embeds",
        data_type::FLOAT,
        &[Dim::named(VIDEOS), Dim::Fixed(proj as i64)],
    );
    Ok(g.finish(
        MODEL_TYPE,
        "X-CLIP (text tower, frame encoder with cross-frame messages, MIT, prompt generator) exported from safetensors by ipfs-accelerate",
    ))
}

/// `XCLIPPromptGenerator` of `text` `[videos, texts, proj]` over the
/// patches' features `[videos, patches, proj]`: the prompt (scaled by
/// `alpha`) that is added to the text.
fn prompt_generator(
    g: &mut GraphBuilder,
    w: &Weights,
    cfg: &XClipConfig,
    text: &str,
    visual: &str,
) -> Result<String, OnnxError> {
    let d = cfg.projection_dim;
    let (text_eps, vision_eps) = (
        cfg.text_config.layer_norm_eps,
        cfg.vision_config.layer_norm_eps,
    );
    let visual = layer_norm(g, w, visual, "prompts_generator.layernorm", d, vision_eps)?;
    let heads = cfg.prompt_num_attention_heads;
    let head_dim = d / heads;
    let scale = g.float((head_dim as f32).powf(-0.5));
    let mut text = text.to_owned();
    for i in 0..cfg.prompt_layers {
        let l = |n: &str| format!("prompts_generator.decoder.{i}.{n}");
        g.set_scope(format!("/prompts_generator/decoder.{i}/cross_attn"));
        let h = layer_norm(g, w, &text, &l("norm1"), d, text_eps)?;
        let q = linear(g, w, &h, &l("cross_attn.q_proj"), (d, d), false)?;
        let q = g.op("Mul", &[&q, &scale], vec![]);
        let k = linear(g, w, &visual, &l("cross_attn.k_proj"), (d, d), false)?;
        let v = linear(g, w, &visual, &l("cross_attn.v_proj"), (d, d), false)?;
        let (q, k, v) = (
            split_heads(g, &q, heads, head_dim),
            split_heads(g, &k, heads, head_dim),
            split_heads(g, &v, heads, head_dim),
        );
        let ctx = attention(g, &q, (&k, &v), None, d);
        let out = linear(g, w, &ctx, &l("cross_attn.proj"), (d, d), true)?;
        text = g.op("Add", &[&text, &out], vec![]);
        g.set_scope(format!("/prompts_generator/decoder.{i}/mlp"));
        let h = layer_norm(g, w, &text, &l("norm3"), d, text_eps)?;
        let names = (l("mlp.0"), l("mlp.3"));
        let down = feed_forward(
            g,
            w,
            &h,
            (&names.0, &names.1),
            (d, 4 * d, d),
            (cfg.prompt_hidden_act, true),
        )?;
        text = g.op("Add", &[&text, &down], vec![]);
    }
    let alpha = weight_as_is(g, w, "prompts_generator.alpha", &[d])?;
    Ok(g.op("Mul", &[&text, &alpha], vec![]))
}
