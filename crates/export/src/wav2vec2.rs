//! wav2vec2 CTC (`Wav2Vec2ForCTC`), as optimum's
//! `automatic-speech-recognition` export: `input_values` (float32
//! `[batch_size, sequence_length]`, already normalised by the feature
//! extractor) in, per-frame `logits` `[batch_size, frames, vocab]` out.
//!
//! Every variant the candle model loads: `feat_extract_norm` `group`
//! (a per-channel GroupNorm after the first convolution, written as
//! `InstanceNormalization`: opset 17 has no `GroupNormalization`) or
//! `layer` (LayerNorm over channels after every convolution), post- or
//! pre-LN transformer (`do_stable_layer_norm`), and the positional
//! convolution's weight norm as `weight_g`/`weight_v`,
//! `parametrizations.weight.original0/1`, or already folded (the norm is
//! folded here, at export).

use super::builder::{attr_float, attr_int, attr_ints, Dim, GraphBuilder};
use super::layers::{activation, attention, layer_norm, linear, split_heads, weight_as_is};
use super::proto::{data_type, ModelProto};
use super::weights::Weights;
use super::OnnxError;

pub use ipfs_accelerate_models::wav2vec2::{Wav2Vec2Config, MODEL_TYPE};

/// The feature encoder's norms use `nn.GroupNorm` / `nn.LayerNorm`'s
/// default epsilon, whatever `layer_norm_eps` says.
const CONV_NORM_EPS: f64 = 1e-5;

/// `[b, c, t]` <-> `[b, t, c]`.
fn swap_last(g: &mut GraphBuilder, x: &str) -> String {
    g.op("Transpose", &[x], vec![attr_ints("perm", &[0, 2, 1])])
}

/// The positional convolution's weight `[d, d / groups, k]`, with weight
/// norm folded: `g * v / ||v||`, the norm over all axes but the kernel's
/// (`weight_norm(dim=2)`).
fn positional_weight(w: &Weights, prefix: &str, shape: [usize; 3]) -> Result<Vec<f32>, OnnxError> {
    let [out, inp, k] = shape;
    let pairs = [
        ("weight_g", "weight_v"),
        (
            "parametrizations.weight.original0",
            "parametrizations.weight.original1",
        ),
    ];
    for (g_name, v_name) in pairs {
        let (g_name, v_name) = (format!("{prefix}.{g_name}"), format!("{prefix}.{v_name}"));
        if w.has(&g_name) && w.has(&v_name) {
            let gain = w.get(&g_name, &[1, 1, k])?;
            let mut v = w.get(&v_name, &shape)?;
            let mut norms = vec![0f32; k];
            for (i, x) in v.iter().enumerate() {
                norms[i % k] += x * x;
            }
            for n in &mut norms {
                *n = n.sqrt();
            }
            for (i, x) in v.iter_mut().enumerate() {
                *x = *x / norms[i % k] * gain[i % k];
            }
            debug_assert_eq!(v.len(), out * inp * k);
            return Ok(v);
        }
    }
    w.get(&format!("{prefix}.weight"), &shape)
}

/// Builds the CTC graph.
pub fn build(model: &str, cfg: &Wav2Vec2Config, w: &Weights) -> Result<ModelProto, OnnxError> {
    cfg.check()
        .map_err(|e| OnnxError::unsupported(model, e.to_string()))?;
    let (d, heads) = (cfg.hidden_size, cfg.num_attention_heads);
    let head_dim = d / heads;
    let eps = cfg.layer_norm_eps;
    let mut g = GraphBuilder::new();
    let values = g.input(
        "input_values",
        data_type::FLOAT,
        &[Dim::named("batch_size"), Dim::named("sequence_length")],
    );

    // Feature encoder: [b, 1, samples] -> [b, conv_dim, frames].
    g.set_scope("/feature_extractor");
    let ax1 = g.ints(&[1]);
    let mut x = g.op("Unsqueeze", &[&values, &ax1], vec![]);
    let mut in_dim = 1;
    for (i, ((&out, &kernel), &stride)) in cfg
        .conv_dim
        .iter()
        .zip(&cfg.conv_kernel)
        .zip(&cfg.conv_stride)
        .enumerate()
    {
        g.set_scope(format!("/feature_extractor/conv_layers.{i}"));
        let p = format!("wav2vec2.feature_extractor.conv_layers.{i}");
        let weight = weight_as_is(
            &mut g,
            w,
            &format!("{p}.conv.weight"),
            &[out, in_dim, kernel],
        )?;
        let mut conv_inputs = vec![x.clone(), weight];
        if cfg.conv_bias {
            conv_inputs.push(weight_as_is(&mut g, w, &format!("{p}.conv.bias"), &[out])?);
        }
        let refs: Vec<&str> = conv_inputs.iter().map(String::as_str).collect();
        x = g.op(
            "Conv",
            &refs,
            vec![
                attr_ints("kernel_shape", &[kernel as i64]),
                attr_ints("strides", &[stride as i64]),
            ],
        );
        match (cfg.feat_extract_norm.as_str(), i) {
            ("layer", _) => {
                let t = swap_last(&mut g, &x);
                let n = layer_norm(
                    &mut g,
                    w,
                    &t,
                    &format!("{p}.layer_norm"),
                    out,
                    CONV_NORM_EPS,
                )?;
                x = swap_last(&mut g, &n);
            }
            ("group", 0) => {
                // GroupNorm with one group per channel normalises each
                // channel over time: InstanceNormalization.
                let scale = weight_as_is(&mut g, w, &format!("{p}.layer_norm.weight"), &[out])?;
                let shift = weight_as_is(&mut g, w, &format!("{p}.layer_norm.bias"), &[out])?;
                x = g.op(
                    "InstanceNormalization",
                    &[&x, &scale, &shift],
                    vec![attr_float("epsilon", CONV_NORM_EPS as f32)],
                );
            }
            _ => {}
        }
        x = activation(&mut g, &x, cfg.feat_extract_activation);
        in_dim = out;
    }

    // Feature projection: [b, frames, conv_dim] -> [b, frames, d].
    g.set_scope("/feature_projection");
    let x = swap_last(&mut g, &x);
    let fp = "wav2vec2.feature_projection";
    let x = layer_norm(&mut g, w, &x, &format!("{fp}.layer_norm"), in_dim, eps)?;
    let x = linear(
        &mut g,
        w,
        &x,
        &format!("{fp}.projection"),
        (in_dim, d),
        true,
    )?;

    // Convolutional positional embedding (Wav2Vec2PositionalConvEmbedding).
    g.set_scope("/encoder/pos_conv_embed");
    let (groups, k) = (
        cfg.num_conv_pos_embedding_groups,
        cfg.num_conv_pos_embeddings,
    );
    let pc = "wav2vec2.encoder.pos_conv_embed.conv";
    let pos_weight = positional_weight(w, pc, [d, d / groups, k])?;
    let pos_weight = g.weight(&format!("{pc}.weight"), &[d, d / groups, k], &pos_weight);
    let pos_bias = weight_as_is(&mut g, w, &format!("{pc}.bias"), &[d])?;
    let t = swap_last(&mut g, &x);
    let half = (k / 2) as i64;
    let mut pos = g.op(
        "Conv",
        &[&t, &pos_weight, &pos_bias],
        vec![
            attr_ints("kernel_shape", &[k as i64]),
            attr_ints("pads", &[half, half]),
            attr_int("group", groups as i64),
        ],
    );
    if k.is_multiple_of(2) {
        // Even kernels give one extra frame (Wav2Vec2SamePadLayer).
        let (start, end, axis) = (g.ints(&[0]), g.ints(&[-1]), g.ints(&[2]));
        pos = g.op("Slice", &[&pos, &start, &end, &axis], vec![]);
    }
    let pos = activation(&mut g, &pos, cfg.feat_extract_activation);
    let pos = swap_last(&mut g, &pos);
    let mut x = g.op("Add", &[&x, &pos], vec![]);

    let enc = "wav2vec2.encoder";
    if !cfg.do_stable_layer_norm {
        g.set_scope("/encoder");
        x = layer_norm(&mut g, w, &x, &format!("{enc}.layer_norm"), d, eps)?;
    }
    let scale = g.float((head_dim as f32).powf(-0.5));
    for i in 0..cfg.num_hidden_layers {
        let l = |n: &str| format!("{enc}.layers.{i}.{n}");
        g.set_scope(format!("/encoder/layers.{i}/attention"));
        let stable = cfg.do_stable_layer_norm;
        let a = if stable {
            layer_norm(&mut g, w, &x, &l("layer_norm"), d, eps)?
        } else {
            x.clone()
        };
        let q = linear(&mut g, w, &a, &l("attention.q_proj"), (d, d), true)?;
        let q = g.op("Mul", &[&q, &scale], vec![]);
        let kk = linear(&mut g, w, &a, &l("attention.k_proj"), (d, d), true)?;
        let v = linear(&mut g, w, &a, &l("attention.v_proj"), (d, d), true)?;
        let q = split_heads(&mut g, &q, heads, head_dim);
        let kk = split_heads(&mut g, &kk, heads, head_dim);
        let v = split_heads(&mut g, &v, heads, head_dim);
        let ctx = attention(&mut g, &q, (&kk, &v), None, d);
        let out = linear(&mut g, w, &ctx, &l("attention.out_proj"), (d, d), true)?;
        x = g.op("Add", &[&x, &out], vec![]);
        if !stable {
            x = layer_norm(&mut g, w, &x, &l("layer_norm"), d, eps)?;
        }

        g.set_scope(format!("/encoder/layers.{i}/feed_forward"));
        let m = if stable {
            layer_norm(&mut g, w, &x, &l("final_layer_norm"), d, eps)?
        } else {
            x.clone()
        };
        let inner = cfg.intermediate_size;
        let up = linear(
            &mut g,
            w,
            &m,
            &l("feed_forward.intermediate_dense"),
            (d, inner),
            true,
        )?;
        let act = activation(&mut g, &up, cfg.hidden_act);
        let down = linear(
            &mut g,
            w,
            &act,
            &l("feed_forward.output_dense"),
            (inner, d),
            true,
        )?;
        x = g.op("Add", &[&x, &down], vec![]);
        if !stable {
            x = layer_norm(&mut g, w, &x, &l("final_layer_norm"), d, eps)?;
        }
    }
    if cfg.do_stable_layer_norm {
        g.set_scope("/encoder");
        x = layer_norm(&mut g, w, &x, &format!("{enc}.layer_norm"), d, eps)?;
    }
    g.set_scope("/lm_head");
    let logits = linear(&mut g, w, &x, "lm_head", (d, cfg.vocab_size), true)?;
    g.set_scope("");
    g.output(
        &logits,
        "logits",
        data_type::FLOAT,
        &[
            Dim::named("batch_size"),
            Dim::named("frames"),
            Dim::Fixed(cfg.vocab_size as i64),
        ],
    );
    Ok(g.finish(
        MODEL_TYPE,
        "wav2vec2 CTC exported from safetensors by ipfs-accelerate",
    ))
}
