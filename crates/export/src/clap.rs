//! CLAP (`ClapModel`) as two graphs, the layout transformers.js publishes
//! for CLAP checkpoints:
//!
//! - `text_model.onnx`: `input_ids`, `attention_mask` `[text_batch_size,
//!   sequence_length]` -> `text_embeds` `[text_batch_size, projection_dim]`,
//!   L2-normalised. The RoBERTa tower (positions counted from the ids, pads
//!   keeping `pad_token_id`), its `tanh` pooler over the first token, the
//!   two-layer projection.
//! - `audio_model.onnx`: `input_features` `[audio_batch_size, channels,
//!   frames, num_mel_bins]` as the feature extractor gives them (and, for a
//!   fused model, `is_longer` `[audio_batch_size, 1]` int64 0/1) ->
//!   `audio_embeds` `[audio_batch_size, projection_dim]`, L2-normalised, and
//!   `logit_scale` (`exp(logit_scale_a)`, the factor of `logits_per_audio`).
//!
//! The audio graph is the HTSAT tower as `ClapAudioEncoder` runs it: the
//! batch norm over mel bins, the bicubic interpolation to the tower's width
//! (`Resize`, align-corners cubic with a = -0.75, which is torch's), the
//! fold into a square image, the patch embedding (with attentional feature
//! fusion of the three local chunks for `enable_fusion`), the Swin stages
//! (windowed attention with the relative position bias, shifted windows
//! with their mask, padding to whole windows, patch merging), the final
//! norm and average, the projection. Shapes that transformers cannot run
//! are refused as the candle model refuses them (`check_audio_config`).

use super::bert::{key_mask_bias, post_ln_layers, PostLnDims};
use super::builder::{attr_float, attr_int, attr_ints, attr_string, Dim, GraphBuilder};
use super::layers::{
    feed_forward, l2_normalize, layer_norm, linear, merge_heads, split_heads, weight_as_is,
};
use super::proto::{data_type, ModelProto};
use super::weights::Weights;
use super::OnnxError;

use ipfs_accelerate_models::clap::{
    batch_norm_affine, check_audio_config, cubic_weights, relative_position_index,
    shift_mask_values,
};
pub use ipfs_accelerate_models::clap::{ClapAudioConfig, ClapConfig, MODEL_TYPE};

/// The graph files, in order.
pub const GRAPHS: &[&str] = &["text_model.onnx", "audio_model.onnx"];

const TEXTS: &str = "text_batch_size";
const SEQ: &str = "sequence_length";
const AUDIOS: &str = "audio_batch_size";
const FRAMES: &str = "frames";

/// Builds `[text_model, audio_model]`.
pub fn build(model: &str, cfg: &ClapConfig, w: &Weights) -> Result<[ModelProto; 2], OnnxError> {
    // The text tower's heads dividing its width: checked when the config
    // was parsed (`CheckConfig`).
    check_audio_config(&cfg.audio_config)
        .map_err(|e| OnnxError::unsupported(model, format!("audio_config: {e}")))?;
    Ok([text_model(cfg, w)?, audio_model(cfg, w)?])
}

/// `linear2(act(linear1(x)))` (`ClapProjectionLayer`), L2-normalised.
fn projection(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    (prefix, hidden): (&str, usize),
    cfg: &ClapConfig,
) -> Result<String, OnnxError> {
    let dim = cfg.projection_dim;
    let names = (format!("{prefix}.linear1"), format!("{prefix}.linear2"));
    let h = feed_forward(
        g,
        w,
        x,
        (&names.0, &names.1),
        (hidden, dim, dim),
        (cfg.projection_hidden_act, true),
    )?;
    Ok(l2_normalize(g, &h))
}

fn text_model(cfg: &ClapConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    let tc = &cfg.text_config;
    let d = tc.hidden_size;
    let mut g = GraphBuilder::new();
    let dims = [Dim::named(TEXTS), Dim::named(SEQ)];
    let ids = g.input("input_ids", data_type::INT64, &dims);
    let mask = g.input("attention_mask", data_type::INT64, &dims);
    g.set_scope("/text_model/embeddings");
    let e = |n: &str| format!("text_model.embeddings.{n}");
    let words = weight_as_is(&mut g, w, &e("word_embeddings.weight"), &[tc.vocab_size, d])?;
    let mut x = g.op("Gather", &[&words, &ids], vec![attr_int("axis", 0)]);
    // Every token's type is 0: its row is added to all.
    let types = w.get(&e("token_type_embeddings.weight"), &[tc.type_vocab_size, d])?;
    let type_row = g.weight("token_type_row", &[d], &types[..d]);
    x = g.op("Add", &[&x, &type_row], vec![]);
    if tc.position_embedding_type == "absolute" {
        // create_position_ids_from_input_ids: the running count of non-pad
        // tokens after pad_token_id; pads keep pad_token_id.
        let positions = weight_as_is(
            &mut g,
            w,
            &e("position_embeddings.weight"),
            &[tc.max_position_embeddings, d],
        )?;
        let pad = g.int(i64::from(tc.pad_token_id));
        let is_pad = g.op("Equal", &[&ids, &pad], vec![]);
        let real = g.op("Not", &[&is_pad], vec![]);
        let real = g.op(
            "Cast",
            &[&real],
            vec![attr_int("to", i64::from(data_type::INT64))],
        );
        let axis = g.int(1);
        let count = g.op("CumSum", &[&real, &axis], vec![]);
        let count = g.op("Mul", &[&count, &real], vec![]);
        let position_ids = g.op("Add", &[&count, &pad], vec![]);
        let pe = g.op(
            "Gather",
            &[&positions, &position_ids],
            vec![attr_int("axis", 0)],
        );
        x = g.op("Add", &[&x, &pe], vec![]);
    }
    let x = layer_norm(&mut g, w, &x, &e("LayerNorm"), d, tc.layer_norm_eps)?;
    let (bias, _) = key_mask_bias(&mut g, &mask);
    let dims = PostLnDims {
        hidden: d,
        heads: tc.num_attention_heads,
        ffn: tc.intermediate_size,
        act: tc.hidden_act,
        eps: tc.layer_norm_eps,
    };
    let x = post_ln_layers(
        &mut g,
        w,
        x,
        ("text_model.encoder.layer", tc.num_hidden_layers),
        &dims,
        &bias,
    )?;
    g.set_scope("/text_model/pooler");
    let zero = g.int(0);
    let first = g.op("Gather", &[&x, &zero], vec![attr_int("axis", 1)]);
    let pooled = linear(&mut g, w, &first, "text_model.pooler.dense", (d, d), true)?;
    let pooled = g.op("Tanh", &[&pooled], vec![]);
    g.set_scope("/text_projection");
    let embeds = projection(&mut g, w, &pooled, ("text_projection", d), cfg)?;
    g.set_scope("");
    g.output(
        &embeds,
        "text_embeds",
        data_type::FLOAT,
        &[Dim::named(TEXTS), Dim::Fixed(cfg.projection_dim as i64)],
    );
    Ok(g.finish(
        "clap_text_model",
        "CLAP text tower (RoBERTa, pooler, projection) exported from safetensors by ipfs-accelerate",
    ))
}

/// Eval-mode batch norm `{prefix}` as per-channel `(α, β)`.
fn batch_norm(
    w: &Weights,
    prefix: &str,
    channels: usize,
) -> Result<(Vec<f32>, Vec<f32>), OnnxError> {
    let get = |n: &str| w.get(&format!("{prefix}.{n}"), &[channels]);
    Ok(batch_norm_affine(
        (&get("weight")?, &get("bias")?),
        (&get("running_mean")?, &get("running_var")?),
    ))
}

/// `x · α + β` over axis 1 of `[b, c, h, w]`.
fn channel_affine(
    g: &mut GraphBuilder,
    x: &str,
    name: &str,
    (alpha, beta): (Vec<f32>, Vec<f32>),
) -> String {
    let c = alpha.len();
    let a = g.weight(&format!("{name}.alpha"), &[c, 1, 1], &alpha);
    let b = g.weight(&format!("{name}.beta"), &[c, 1, 1], &beta);
    let y = g.op("Mul", &[x, &a], vec![]);
    g.op("Add", &[&y, &b], vec![])
}

/// A 2-D convolution `{prefix}.weight` / `.bias` with per-axis kernel,
/// stride and padding.
fn conv(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    (c_in, c_out): (usize, usize),
    (kernel, stride, padding): ((usize, usize), (usize, usize), (usize, usize)),
) -> Result<String, OnnxError> {
    let weight = weight_as_is(
        g,
        w,
        &format!("{prefix}.weight"),
        &[c_out, c_in, kernel.0, kernel.1],
    )?;
    let bias = weight_as_is(g, w, &format!("{prefix}.bias"), &[c_out])?;
    let (ph, pw) = (padding.0 as i64, padding.1 as i64);
    Ok(g.op(
        "Conv",
        &[x, &weight, &bias],
        vec![
            attr_ints("kernel_shape", &[kernel.0 as i64, kernel.1 as i64]),
            attr_ints("strides", &[stride.0 as i64, stride.1 as i64]),
            attr_ints("pads", &[ph, pw, ph, pw]),
        ],
    ))
}

/// `x[:, :, lo:hi]`-style slice of one axis.
fn slice(g: &mut GraphBuilder, x: &str, axis: i64, (lo, hi): (i64, i64)) -> String {
    let (lo, hi, axis) = (g.ints(&[lo]), g.ints(&[hi]), g.ints(&[axis]));
    g.op("Slice", &[x, &lo, &hi, &axis], vec![])
}

/// torch's `roll(shift, axis)` of an axis of length `len`.
fn roll(g: &mut GraphBuilder, x: &str, axis: i64, shift: i64, len: i64) -> String {
    let cut = (len - shift).rem_euclid(len);
    let tail = slice(g, x, axis, (cut, len));
    let head = slice(g, x, axis, (0, cut));
    g.op("Concat", &[&tail, &head], vec![attr_int("axis", axis)])
}

/// Zero padding at the end of axes 1 and 2 of `[b, h, w, c]`.
fn pad_grid(g: &mut GraphBuilder, x: &str, (dh, dw): (usize, usize)) -> String {
    if (dh, dw) == (0, 0) {
        return x.to_owned();
    }
    let pads = g.ints(&[0, 0, 0, 0, 0, dh as i64, dw as i64, 0]);
    g.op("Pad", &[x, &pads], vec![])
}

/// One Swin layer's place in the tower.
struct Block {
    dim: usize,
    heads: usize,
    resolution: (usize, usize),
    shift: usize,
}

/// A Swin block `{prefix}` over `x` `[b, h·w, dim]`.
fn swin_block(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    ac: &ClapAudioConfig,
    block: &Block,
) -> Result<String, OnnxError> {
    let (dim, heads) = (block.dim, block.heads);
    let (h, wd) = block.resolution;
    let ws = ac.window_size;
    let (hp, wp) = (h.div_ceil(ws) * ws, wd.div_ceil(ws) * ws);
    let (nh, nw) = (hp / ws, wp / ws);
    let n = ws * ws;
    let l = |name: &str| format!("{prefix}.{name}");
    let normed = layer_norm(g, w, x, &l("layernorm_before"), dim, ac.layer_norm_eps)?;
    let shape = g.ints(&[-1, h as i64, wd as i64, dim as i64]);
    let grid = g.op("Reshape", &[&normed, &shape], vec![]);
    let mut grid = pad_grid(g, &grid, (hp - h, wp - wd));
    let shift = block.shift as i64;
    if shift > 0 {
        grid = roll(g, &grid, 1, -shift, hp as i64);
        grid = roll(g, &grid, 2, -shift, wp as i64);
    }
    let shape = g.ints(&[-1, nh as i64, ws as i64, nw as i64, ws as i64, dim as i64]);
    let windows = g.op("Reshape", &[&grid, &shape], vec![]);
    let windows = g.op(
        "Transpose",
        &[&windows],
        vec![attr_ints("perm", &[0, 1, 3, 2, 4, 5])],
    );
    let shape = g.ints(&[-1, n as i64, dim as i64]);
    let windows = g.op("Reshape", &[&windows, &shape], vec![]);

    // Attention within each window.
    let head_dim = dim / heads;
    let a = |name: &str| format!("{prefix}.attention.{name}");
    let q = linear(g, w, &windows, &a("self.query"), (dim, dim), ac.qkv_bias)?;
    let k = linear(g, w, &windows, &a("self.key"), (dim, dim), ac.qkv_bias)?;
    let v = linear(g, w, &windows, &a("self.value"), (dim, dim), ac.qkv_bias)?;
    let (q, k, v) = (
        split_heads(g, &q, heads, head_dim),
        split_heads(g, &k, heads, head_dim),
        split_heads(g, &v, heads, head_dim),
    );
    let kt = g.op("Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
    let scores = g.op("MatMul", &[&q, &kt], vec![]);
    let root = g.float((head_dim as f32).sqrt());
    let scores = g.op("Div", &[&scores, &root], vec![]);
    let table = w.get(
        &a("self.relative_position_bias_table"),
        &[(2 * ws - 1) * (2 * ws - 1), heads],
    )?;
    // [heads, n, n] from the table's rows, as the candle model reads them.
    let index = relative_position_index(ws);
    let mut bias = vec![0f32; heads * n * n];
    for (ij, &row) in index.iter().enumerate() {
        for head in 0..heads {
            bias[head * n * n + ij] = table[row as usize * heads + head];
        }
    }
    let bias = g.weight(&a("relative_position_bias"), &[heads, n, n], &bias);
    let mut scores = g.op("Add", &[&scores, &bias], vec![]);
    if shift > 0 {
        let mask = shift_mask_values((hp, wp), ws, block.shift);
        let mask = g.weight(&format!("{prefix}.shift_mask"), &[nh * nw, 1, n, n], &mask);
        let shape = g.ints(&[-1, (nh * nw) as i64, heads as i64, n as i64, n as i64]);
        let s5 = g.op("Reshape", &[&scores, &shape], vec![]);
        let s5 = g.op("Add", &[&s5, &mask], vec![]);
        let shape = g.ints(&[-1, heads as i64, n as i64, n as i64]);
        scores = g.op("Reshape", &[&s5, &shape], vec![]);
    }
    let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
    let ctx = g.op("MatMul", &[&probs, &v], vec![]);
    let ctx = merge_heads(g, &ctx, dim);
    let attended = linear(g, w, &ctx, &a("output.dense"), (dim, dim), true)?;

    // Windows back to the grid.
    let shape = g.ints(&[-1, nh as i64, nw as i64, ws as i64, ws as i64, dim as i64]);
    let grid = g.op("Reshape", &[&attended, &shape], vec![]);
    let grid = g.op(
        "Transpose",
        &[&grid],
        vec![attr_ints("perm", &[0, 1, 3, 2, 4, 5])],
    );
    let shape = g.ints(&[-1, hp as i64, wp as i64, dim as i64]);
    let mut grid = g.op("Reshape", &[&grid, &shape], vec![]);
    if shift > 0 {
        grid = roll(g, &grid, 1, shift, hp as i64);
        grid = roll(g, &grid, 2, shift, wp as i64);
    }
    if (hp, wp) != (h, wd) {
        grid = slice(g, &grid, 1, (0, h as i64));
        grid = slice(g, &grid, 2, (0, wd as i64));
    }
    let shape = g.ints(&[-1, (h * wd) as i64, dim as i64]);
    let grid = g.op("Reshape", &[&grid, &shape], vec![]);
    let x = g.op("Add", &[x, &grid], vec![]);

    let normed = layer_norm(g, w, &x, &l("layernorm_after"), dim, ac.layer_norm_eps)?;
    let ffn = (ac.mlp_ratio * dim as f64) as usize;
    let names = (l("intermediate.dense"), l("output.dense"));
    let down = feed_forward(
        g,
        w,
        &normed,
        (&names.0, &names.1),
        (dim, ffn, dim),
        (ac.hidden_act, true),
    )?;
    Ok(g.op("Add", &[&x, &down], vec![]))
}

/// `ClapAudioPatchMerging` `{prefix}` of `x` `[b, h·w, dim]`: 2x2
/// neighbours concatenated in transformers' order, normed, reduced.
fn patch_merging(
    g: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    prefix: &str,
    dim: usize,
    (h, wd): (usize, usize),
) -> Result<String, OnnxError> {
    let shape = g.ints(&[-1, h as i64, wd as i64, dim as i64]);
    let grid = g.op("Reshape", &[x, &shape], vec![]);
    let grid = pad_grid(g, &grid, (h % 2, wd % 2));
    let (h2, w2) = (h.div_ceil(2), wd.div_ceil(2));
    let shape = g.ints(&[-1, h2 as i64, 2, w2 as i64, 2, dim as i64]);
    let grid = g.op("Reshape", &[&grid, &shape], vec![]);
    // [b, h2, w2, dx, dy, c]: transformers concatenates (dy, dx) = (0, 0),
    // (1, 0), (0, 1), (1, 1), i.e. index dx·2 + dy.
    let grid = g.op(
        "Transpose",
        &[&grid],
        vec![attr_ints("perm", &[0, 1, 3, 4, 2, 5])],
    );
    let shape = g.ints(&[-1, (h2 * w2) as i64, 4 * dim as i64]);
    let merged = g.op("Reshape", &[&grid, &shape], vec![]);
    let merged = layer_norm(g, w, &merged, &format!("{prefix}.norm"), 4 * dim, 1e-5)?;
    linear(
        g,
        w,
        &merged,
        &format!("{prefix}.reduction"),
        (4 * dim, 2 * dim),
        false,
    )
}

/// Attentional feature fusion (`ClapAudioAFFBlock`) `{prefix}` of the
/// global and local patch embeddings `[b, c, h, w]`.
fn feature_fusion(
    g: &mut GraphBuilder,
    w: &Weights,
    (global, local): (&str, &str),
    prefix: &str,
    (channels, ratio): (usize, usize),
) -> Result<String, OnnxError> {
    let inter = channels / ratio.max(1);
    let one_by_one = ((1, 1), (1, 1), (0, 0));
    let sum = g.op("Add", &[global, local], vec![]);
    let branch = |g: &mut GraphBuilder,
                  x: &str,
                  name: &str,
                  (c0, b0, c1, b1): (usize, usize, usize, usize)|
     -> Result<String, OnnxError> {
        let p = |i: usize| format!("{prefix}.{name}.{i}");
        let h = conv(g, w, x, &p(c0), (channels, inter), one_by_one)?;
        let h = channel_affine(g, &h, &p(b0), batch_norm(w, &p(b0), inter)?);
        let h = g.op("Relu", &[&h], vec![]);
        let h = conv(g, w, &h, &p(c1), (inter, channels), one_by_one)?;
        Ok(channel_affine(
            g,
            &h,
            &p(b1),
            batch_norm(w, &p(b1), channels)?,
        ))
    };
    let local_weight = branch(g, &sum, "local_att", (0, 1, 3, 4))?;
    let pooled = g.op("GlobalAveragePool", &[&sum], vec![]);
    let global_weight = branch(g, &pooled, "global_att", (1, 2, 4, 5))?;
    let weight = g.op("Add", &[&local_weight, &global_weight], vec![]);
    let weight = g.op("Sigmoid", &[&weight], vec![]);
    let two = g.float(2.0);
    let from_global = g.op("Mul", &[global, &weight], vec![]);
    let from_global = g.op("Mul", &[&from_global, &two], vec![]);
    let one = g.float(1.0);
    let rest = g.op("Sub", &[&one, &weight], vec![]);
    let from_local = g.op("Mul", &[local, &rest], vec![]);
    let from_local = g.op("Mul", &[&from_local, &two], vec![]);
    Ok(g.op("Add", &[&from_global, &from_local], vec![]))
}

fn audio_model(cfg: &ClapConfig, w: &Weights) -> Result<ModelProto, OnnxError> {
    let ac = &cfg.audio_config;
    let p = |n: &str| format!("audio_model.audio_encoder.{n}");
    let (patch, stride) = (ac.patch_size.pair(), ac.patch_stride.pair());
    let padding = (
        patch.0.saturating_sub(stride.0) / 2,
        patch.1.saturating_sub(stride.1) / 2,
    );
    let grid = (ac.spec_size / stride.0, ac.spec_size / stride.1);
    let bins = ac.num_mel_bins;
    let r = ac.spec_size / bins;
    let (width, height) = (ac.spec_size * r, ac.spec_size / r);
    let channels = if ac.enable_fusion { 4 } else { 1 };

    let mut g = GraphBuilder::new();
    let features = g.input(
        "input_features",
        data_type::FLOAT,
        &[
            Dim::named(AUDIOS),
            Dim::Fixed(channels as i64),
            Dim::named(FRAMES),
            Dim::Fixed(bins as i64),
        ],
    );
    let is_longer = ac.enable_fusion.then(|| {
        g.input(
            "is_longer",
            data_type::INT64,
            &[Dim::named(AUDIOS), Dim::Fixed(1)],
        )
    });

    // reshape_mel2img: fewer frames than the tower's width are
    // interpolated to it (the candle model and the skill refuse more).
    g.set_scope("/audio_model/mel2img");
    let head = g.op(
        "Shape",
        &[&features],
        vec![attr_int("start", 0), attr_int("end", 2)],
    );
    let tail = g.ints(&[width as i64, bins as i64]);
    let sizes = g.op("Concat", &[&head, &tail], vec![attr_int("axis", 0)]);
    let x = g.op(
        "Resize",
        &[features.as_str(), "", "", sizes.as_str()],
        vec![
            attr_string("mode", "cubic"),
            attr_string("coordinate_transformation_mode", "align_corners"),
            attr_float("cubic_coeff_a", -0.75),
            attr_int("exclude_outside", 0),
        ],
    );
    // The batch norm over mel bins, then (fewer bins than the tower's
    // height) their interpolation: both linear along the bin axis, so one
    // constant matrix and bias. The frame interpolation above commutes
    // with them (its weights sum to one).
    let (alpha, beta) = batch_norm(w, &p("batch_norm"), bins)?;
    let x = if bins < height {
        let resize = cubic_weights(bins, height); // [height][bins]
        let mut matrix = vec![0f32; bins * height]; // [bins][height]
        let mut offset = vec![0f32; height];
        for o in 0..height {
            for i in 0..bins {
                matrix[i * height + o] = resize[o * bins + i] * alpha[i];
                offset[o] += resize[o * bins + i] * beta[i];
            }
        }
        let matrix = g.weight("mel_batch_norm_resize", &[bins, height], &matrix);
        let offset = g.weight("mel_batch_norm_resize.bias", &[height], &offset);
        let y = g.op("MatMul", &[&x, &matrix], vec![]);
        g.op("Add", &[&y, &offset], vec![])
    } else {
        let a = g.weight("mel_batch_norm.alpha", &[bins], &alpha);
        let b = g.weight("mel_batch_norm.beta", &[bins], &beta);
        let y = g.op("Mul", &[&x, &a], vec![]);
        g.op("Add", &[&y, &b], vec![])
    };
    let (t, f) = (width, bins.max(height));
    let shape = g.ints(&[-1, (channels * r) as i64, (t / r) as i64, f as i64]);
    let x = g.op("Reshape", &[&x, &shape], vec![]);
    let x = g.op("Transpose", &[&x], vec![attr_ints("perm", &[0, 1, 3, 2])]);
    let shape = g.ints(&[-1, channels as i64, (f * r) as i64, (t / r) as i64]);
    let image = g.op("Reshape", &[&x, &shape], vec![]);

    // Patch embedding.
    g.set_scope("/audio_model/patch_embed");
    let embed_dim = ac.patch_embeds_hidden_size;
    let pe = |n: &str| p(&format!("patch_embed.{n}"));
    let embedded = if let Some(is_longer) = &is_longer {
        let first = slice(&mut g, &image, 1, (0, 1));
        let global = conv(
            &mut g,
            w,
            &first,
            &pe("proj"),
            (1, embed_dim),
            (patch, stride, padding),
        )?;
        // The three local chunks, each through mel_conv2d, side by side.
        let (side_h, side_w) = (f * r, t / r);
        let rest = slice(&mut g, &image, 1, (1, 4));
        let shape = g.ints(&[-1, 1, side_h as i64, side_w as i64]);
        let rest = g.op("Reshape", &[&rest, &shape], vec![]);
        let local = conv(
            &mut g,
            w,
            &rest,
            &pe("mel_conv2d"),
            (1, embed_dim),
            ((patch.0, patch.1 * 3), (stride.0, stride.1 * 3), padding),
        )?;
        let (lh, lw) = match (
            (side_h + 2 * padding.0).checked_sub(patch.0),
            (side_w + 2 * padding.1).checked_sub(patch.1 * 3),
        ) {
            (Some(h), Some(w)) => (h / stride.0 + 1, w / (stride.1 * 3) + 1),
            _ => {
                return Err(OnnxError::unsupported(
                    "clap",
                    format!(
                        "the fused patch kernel {}x{} is larger than the {side_h}x{side_w} input",
                        patch.0,
                        patch.1 * 3
                    ),
                ))
            }
        };
        let shape = g.ints(&[-1, 3, embed_dim as i64, lh as i64, lw as i64]);
        let local = g.op("Reshape", &[&local, &shape], vec![]);
        let local = g.op(
            "Transpose",
            &[&local],
            vec![attr_ints("perm", &[0, 2, 3, 1, 4])],
        );
        let shape = g.ints(&[-1, embed_dim as i64, lh as i64, (3 * lw) as i64]);
        let local = g.op("Reshape", &[&local, &shape], vec![]);
        // F.pad to the global width (a negative pad crops).
        let local = if 3 * lw < grid.1 {
            let pads = g.ints(&[0, 0, 0, 0, 0, 0, 0, (grid.1 - 3 * lw) as i64]);
            g.op("Pad", &[&local, &pads], vec![])
        } else {
            slice(&mut g, &local, 3, (0, grid.1 as i64))
        };
        let fused = feature_fusion(
            &mut g,
            w,
            (&global, &local),
            &pe("fusion_model"),
            (embed_dim, ac.aff_block_r),
        )?;
        // Only audio longer than max_length_s is fused.
        let longer = g.op(
            "Cast",
            &[is_longer],
            vec![attr_int("to", i64::from(data_type::BOOL))],
        );
        let axes = g.ints(&[2, 3]);
        let longer = g.op("Unsqueeze", &[&longer, &axes], vec![]);
        g.op("Where", &[&longer, &fused, &global], vec![])
    } else {
        conv(
            &mut g,
            w,
            &image,
            &pe("proj"),
            (1, embed_dim),
            (patch, stride, padding),
        )?
    };
    let shape = g.ints(&[0, embed_dim as i64, (grid.0 * grid.1) as i64]);
    let tokens = g.op("Reshape", &[&embedded, &shape], vec![]);
    let mut x = g.op("Transpose", &[&tokens], vec![attr_ints("perm", &[0, 2, 1])]);
    if ac.enable_patch_layer_norm {
        x = layer_norm(&mut g, w, &x, &pe("norm"), embed_dim, 1e-5)?;
    }

    // The Swin stages.
    let layers = ac.depths.len();
    for (i, (&depth, &heads)) in ac.depths.iter().zip(&ac.num_attention_heads).enumerate() {
        let dim = embed_dim << i;
        let resolution = (grid.0 >> i, grid.1 >> i);
        for j in 0..depth {
            g.set_scope(format!("/audio_model/layers.{i}/blocks.{j}"));
            // A stage no larger than a window is one unshifted window.
            let shift = if j % 2 == 1 && resolution.0.min(resolution.1) > ac.window_size {
                ac.window_size / 2
            } else {
                0
            };
            let block = Block {
                dim,
                heads,
                resolution,
                shift,
            };
            x = swin_block(
                &mut g,
                w,
                &x,
                &p(&format!("layers.{i}.blocks.{j}")),
                ac,
                &block,
            )?;
        }
        if i + 1 < layers {
            g.set_scope(format!("/audio_model/layers.{i}/downsample"));
            x = patch_merging(
                &mut g,
                w,
                &x,
                &p(&format!("layers.{i}.downsample")),
                dim,
                resolution,
            )?;
        }
    }
    g.set_scope("/audio_model/pool");
    let features = embed_dim << (layers - 1);
    let x = layer_norm(&mut g, w, &x, &p("norm"), features, 1e-5)?;
    // The average over all tokens; transformers' regrouping before its
    // AdaptiveAvgPool1d only reorders them.
    let pooled = g.op(
        "ReduceMean",
        &[&x],
        vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
    );
    g.set_scope("/audio_projection");
    let embeds = projection(
        &mut g,
        w,
        &pooled,
        ("audio_projection", ac.hidden_size),
        cfg,
    )?;
    let scale = w.get("logit_scale_a", &[])?;
    let scale = g.weight(
        "logit_scale_a.exp",
        &[],
        &[scale.first().copied().unwrap_or_default().exp()],
    );
    g.set_scope("");
    g.output(
        &embeds,
        "audio_embeds",
        data_type::FLOAT,
        &[Dim::named(AUDIOS), Dim::Fixed(cfg.projection_dim as i64)],
    );
    g.output(&scale, "logit_scale", data_type::FLOAT, &[]);
    Ok(g.finish(
        "clap_audio_model",
        "CLAP audio tower (HTSAT, projection) exported from safetensors by ipfs-accelerate",
    ))
}
