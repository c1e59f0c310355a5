//! BERT-family encoders (`BertModel`, sentence-transformers checkpoints
//! such as all-MiniLM-L6-v2): `last_hidden_state`, and optionally the
//! sentence-transformers pooling and normalisation inside the graph.

use super::builder::{attr_int, attr_ints, Dim, GraphBuilder};
use super::layers::{dim_scalar, feed_forward, layer_norm, linear, merge_heads, split_heads};
use super::proto::{data_type, ModelProto};
use super::weights::Weights;
use super::OnnxError;
pub use ipfs_accelerate_models::bert::MODEL_TYPE;
use ipfs_accelerate_models::layers::activation::Activation;
use ipfs_accelerate_models::pooling::Pooling;
use serde::Deserialize;

/// The `config.json` keys the BERT exporter reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Vocabulary rows.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// MLP activation.
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Token type rows.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Only `absolute` is exported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}
fn default_position_type() -> String {
    "absolute".to_owned()
}

/// Pooling and normalisation to put in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentencePooling {
    /// Modes (none set means mean, as sentence-transformers' default).
    pub pooling: Pooling,
    /// L2-normalise (a `Normalize` module).
    pub normalize: bool,
}

const BATCH: &str = "batch_size";
const SEQ: &str = "sequence_length";

/// Builds the encoder graph.
pub fn build(
    model: &str,
    cfg: &BertConfig,
    w: &Weights,
    pooling: Option<&SentencePooling>,
) -> Result<ModelProto, OnnxError> {
    let unsupported = |reason: String| OnnxError::unsupported(model, reason);
    if cfg.position_embedding_type != "absolute" {
        return Err(unsupported(format!(
            "position_embedding_type '{}' (only 'absolute' is exported)",
            cfg.position_embedding_type
        )));
    }
    let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
    if heads == 0 || !h.is_multiple_of(heads) {
        return Err(unsupported(format!(
            "hidden_size {h} is not a multiple of num_attention_heads {heads}"
        )));
    }
    // Checkpoints saved from BertModel have no prefix; from BertFor* `bert.`.
    let p = match w.first_of(&[
        "embeddings.word_embeddings.weight",
        "bert.embeddings.word_embeddings.weight",
    ]) {
        Some(name) => name.trim_end_matches("embeddings.word_embeddings.weight"),
        None => {
            return Err(OnnxError::Weights {
                model: model.to_owned(),
                reason: "no embeddings.word_embeddings.weight (with or without 'bert.')".into(),
            })
        }
    };
    let dyn2 = [Dim::named(BATCH), Dim::named(SEQ)];
    let mut g = GraphBuilder::new();
    let ids = g.input("input_ids", data_type::INT64, &dyn2);
    let mask = g.input("attention_mask", data_type::INT64, &dyn2);
    let types = g.input("token_type_ids", data_type::INT64, &dyn2);

    g.set_scope("/embeddings");
    let e = |n: &str| format!("{p}embeddings.{n}");
    let word = super::layers::weight_as_is(
        &mut g,
        w,
        &e("word_embeddings.weight"),
        &[cfg.vocab_size, h],
    )?;
    let pos = super::layers::weight_as_is(
        &mut g,
        w,
        &e("position_embeddings.weight"),
        &[cfg.max_position_embeddings, h],
    )?;
    let tt = super::layers::weight_as_is(
        &mut g,
        w,
        &e("token_type_embeddings.weight"),
        &[cfg.type_vocab_size, h],
    )?;
    let x = g.op("Gather", &[&word, &ids], vec![attr_int("axis", 0)]);
    let t = g.op("Gather", &[&tt, &types], vec![attr_int("axis", 0)]);
    let seq = dim_scalar(&mut g, &ids, 1);
    let (zero, one) = (g.int(0), g.int(1));
    let positions = g.op("Range", &[&zero, &seq, &one], vec![]);
    let pe = g.op("Gather", &[&pos, &positions], vec![attr_int("axis", 0)]);
    let x = g.op("Add", &[&x, &t], vec![]);
    let x = g.op("Add", &[&x, &pe], vec![]);
    let x = layer_norm(&mut g, w, &x, &e("LayerNorm"), h, cfg.layer_norm_eps)?;

    let (bias, maskf) = key_mask_bias(&mut g, &mask);
    let dims = PostLnDims {
        hidden: h,
        heads,
        ffn: cfg.intermediate_size,
        act: cfg.hidden_act,
        eps: cfg.layer_norm_eps,
    };
    let x = post_ln_layers(
        &mut g,
        w,
        x,
        (&format!("{p}encoder.layer"), cfg.num_hidden_layers),
        &dims,
        &bias,
    )?;
    g.set_scope("");
    g.output(
        &x,
        "last_hidden_state",
        data_type::FLOAT,
        &[Dim::named(BATCH), Dim::named(SEQ), Dim::Fixed(h as i64)],
    );
    if let Some(pooling) = pooling {
        g.set_scope("/pooling");
        if pooling.pooling.pooling_mode_weightedmean_tokens
            || pooling.pooling.pooling_mode_lasttoken
        {
            return Err(unsupported(
                "pooling modes weightedmean and lasttoken are not exported".to_owned(),
            ));
        }
        let (pooled, width) = pool(&mut g, &x, &maskf, h, &pooling.pooling);
        let out = if pooling.normalize {
            l2_normalize(&mut g, &pooled)
        } else {
            pooled
        };
        g.set_scope("");
        g.output(
            &out,
            "sentence_embedding",
            data_type::FLOAT,
            &[Dim::named(BATCH), Dim::Fixed(width as i64)],
        );
    }
    Ok(g.finish(
        MODEL_TYPE,
        "BERT encoder exported from safetensors by ipfs-accelerate",
    ))
}

/// The pooled `[b, h * modes]` and its width.
fn pool(
    g: &mut GraphBuilder,
    hidden: &str,
    maskf: &str,
    h: usize,
    cfg: &Pooling,
) -> (String, usize) {
    let mean_default = !(cfg.pooling_mode_cls_token
        || cfg.pooling_mode_max_tokens
        || cfg.pooling_mode_mean_tokens
        || cfg.pooling_mode_mean_sqrt_len_tokens);
    let ax_last = g.ints(&[-1]);
    let ax1 = g.ints(&[1]);
    let m3 = g.op("Unsqueeze", &[maskf, &ax_last], vec![]); // [b, s, 1]
    let mut parts = Vec::new();
    if cfg.pooling_mode_cls_token {
        let zero = g.int(0);
        parts.push(g.op("Gather", &[hidden, &zero], vec![attr_int("axis", 1)]));
    }
    if cfg.pooling_mode_max_tokens {
        // Padded positions must never win the max.
        let one = g.float(1.0);
        let inv = g.op("Sub", &[&one, &m3], vec![]);
        let big = g.float(-1e9);
        let penalty = g.op("Mul", &[&inv, &big], vec![]);
        let masked = g.op("Add", &[hidden, &penalty], vec![]);
        parts.push(g.op(
            "ReduceMax",
            &[&masked],
            vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
        ));
    }
    if cfg.pooling_mode_mean_tokens || cfg.pooling_mode_mean_sqrt_len_tokens || mean_default {
        let weighted = g.op("Mul", &[hidden, &m3], vec![]);
        let summed = g.op(
            "ReduceSum",
            &[&weighted, &ax1],
            vec![attr_int("keepdims", 0)],
        );
        let len = g.op("ReduceSum", &[&m3, &ax1], vec![attr_int("keepdims", 0)]); // [b, 1]
        let tiny = g.float(1e-9);
        let len = g.op("Max", &[&len, &tiny], vec![]);
        if cfg.pooling_mode_mean_tokens || mean_default {
            parts.push(g.op("Div", &[&summed, &len], vec![]));
        }
        if cfg.pooling_mode_mean_sqrt_len_tokens {
            let root = g.op("Sqrt", &[&len], vec![]);
            parts.push(g.op("Div", &[&summed, &root], vec![]));
        }
    }
    let width = h * parts.len();
    let out = if parts.len() == 1 {
        parts.remove(0)
    } else {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        g.op("Concat", &refs, vec![attr_int("axis", 1)])
    };
    (out, width)
}

/// Rows divided by `max(||x||, 1e-12)`, as `torch.nn.functional.normalize`.
fn l2_normalize(g: &mut GraphBuilder, x: &str) -> String {
    let norm = g.op(
        "ReduceL2",
        &[x],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    );
    let eps = g.float(1e-12);
    let norm = g.op("Max", &[&norm, &eps], vec![]);
    g.op("Div", &[x, &norm], vec![])
}

/// The same structural checks as the network's config.
impl ipfs_accelerate_models::CheckConfig for BertConfig {
    fn check(&self) -> Result<(), ipfs_accelerate_models::ModelError> {
        use ipfs_accelerate_models::config_check::{count, Stack};
        Stack {
            prefix: "",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check_text(self.vocab_size, self.max_position_embeddings)?;
        count("type_vocab_size", self.type_vocab_size)
    }
}

/// One post-LN BERT layer stack's shape.
pub(crate) struct PostLnDims {
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub act: Activation,
    pub eps: f64,
}

/// The additive key mask `[b, 1, 1, s]` of `attention_mask` `[b, s]` (0 for
/// real tokens, the float32 minimum for padding, as transformers' extended
/// attention mask), and the mask as float32.
pub(crate) fn key_mask_bias(g: &mut GraphBuilder, mask: &str) -> (String, String) {
    g.set_scope("/mask");
    let maskf = g.op("Cast", &[mask], vec![attr_int("to", 1)]);
    let onef = g.float(1.0);
    let inv = g.op("Sub", &[&onef, &maskf], vec![]);
    let minf = g.float(f32::MIN);
    let bias = g.op("Mul", &[&inv, &minf], vec![]);
    let ax12 = g.ints(&[1, 2]);
    (g.op("Unsqueeze", &[&bias, &ax12], vec![]), maskf)
}

/// BERT's post-LN layers `{prefix}.{i}` (`attention.self.{query,key,value}`,
/// `attention.output.{dense,LayerNorm}`, `intermediate.dense`,
/// `output.{dense,LayerNorm}`) over `x` `[b, s, hidden]` with the key mask
/// `bias`: the last layer's output.
pub(crate) fn post_ln_layers(
    g: &mut GraphBuilder,
    w: &Weights,
    mut x: String,
    (prefix, layers): (&str, usize),
    dims: &PostLnDims,
    bias: &str,
) -> Result<String, OnnxError> {
    let (h, heads) = (dims.hidden, dims.heads);
    let d = h / heads;
    let scale = g.float(1.0 / (d as f32).sqrt());
    let scope = prefix.replace('.', "/");
    for i in 0..layers {
        let l = |n: &str| format!("{prefix}.{i}.{n}");
        g.set_scope(format!("/{scope}.{i}/attention"));
        let q = linear(g, w, &x, &l("attention.self.query"), (h, h), true)?;
        let k = linear(g, w, &x, &l("attention.self.key"), (h, h), true)?;
        let v = linear(g, w, &x, &l("attention.self.value"), (h, h), true)?;
        let q = split_heads(g, &q, heads, d);
        let k = split_heads(g, &k, heads, d);
        let v = split_heads(g, &v, heads, d);
        let kt = g.op("Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
        let scores = g.op("MatMul", &[&q, &kt], vec![]);
        let scores = g.op("Mul", &[&scores, &scale], vec![]);
        let scores = g.op("Add", &[&scores, bias], vec![]);
        let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
        let ctx = g.op("MatMul", &[&probs, &v], vec![]);
        let ctx = merge_heads(g, &ctx, h);
        let out = linear(g, w, &ctx, &l("attention.output.dense"), (h, h), true)?;
        let res = g.op("Add", &[&out, &x], vec![]);
        let x1 = layer_norm(g, w, &res, &l("attention.output.LayerNorm"), h, dims.eps)?;
        g.set_scope(format!("/{scope}.{i}/mlp"));
        let names = (l("intermediate.dense"), l("output.dense"));
        let down = feed_forward(
            g,
            w,
            &x1,
            (&names.0, &names.1),
            (h, dims.ffn, h),
            (dims.act, true),
        )?;
        let res = g.op("Add", &[&down, &x1], vec![]);
        x = layer_norm(g, w, &res, &l("output.LayerNorm"), h, dims.eps)?;
    }
    Ok(x)
}
