//! T5 (`T5ForConditionalGeneration`), written with candle-nn.
//!
//! Not candle-transformers' `t5`: it buckets relative positions the
//! bidirectional way in the decoder too (its own comment says so), which
//! changes the decoder's attention bias from distance 8 on, so greedy ids
//! drift from transformers after a few steps. Here the decoder uses
//! transformers' unidirectional buckets.

use crate::layers::activation::Activation;
use crate::layers::attention::{merge_heads, split_heads, KvCache};
use crate::layers::linear::Linear;
use crate::ModelError;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{embedding, Embedding, Module, VarBuilder};
use serde::Deserialize;
use serde_json::Value;

/// `config.json`'s `model_type` for T5.
pub const MODEL_TYPE: &str = "t5";

/// The `config.json` keys T5 reads (defaults are transformers' `T5Config`).
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    /// Vocabulary rows.
    pub vocab_size: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder blocks (and decoder blocks unless `num_decoder_layers`).
    pub num_layers: usize,
    /// Decoder blocks, when they differ.
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Distance from which buckets saturate.
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    /// RMS norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `ACT` or `gated-ACT`.
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    /// The LM head is the shared embedding (output rescaled).
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".to_owned()
}
fn yes() -> bool {
    true
}

/// Parses `config.json`; a missing `tie_word_embeddings` means tied.
pub fn parse_config(config: &Value) -> std::result::Result<T5Config, ModelError> {
    crate::parse_config(config)
}

impl T5Config {
    /// `feed_forward_proj` as transformers reads it: `[gated-]ACT`, with
    /// `gated-gelu` meaning the tanh GELU.
    pub fn feed_forward(&self) -> Result<(bool, Activation)> {
        let spec = self.feed_forward_proj.as_str();
        let (gated, act) = match spec.split_once('-') {
            Some(("gated", act)) => (true, act),
            None => (false, spec),
            Some(_) => candle_core::bail!("feed_forward_proj '{spec}' is not `ACT` or `gated-ACT`"),
        };
        let act = if spec == "gated-gelu" {
            "gelu_new"
        } else {
            act
        };
        let act: Activation =
            serde_json::from_value(Value::String(act.to_owned())).map_err(|_| {
                candle_core::Error::Msg(format!("feed_forward_proj '{spec}': unknown activation"))
            })?;
        Ok((gated, act))
    }
}

/// T5's RMS norm (no mean, no bias), computed in f32.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let variance = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        x.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}

fn linear(vb: VarBuilder, n_in: usize, n_out: usize) -> Result<Linear> {
    Ok(Linear::new(vb.get((n_out, n_in), "weight")?, None))
}

/// transformers' `_relative_position_bucket`, with its f32 arithmetic.
pub fn bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> u32 {
    let mut buckets = num_buckets as i64;
    let mut base = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            base = buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    let offset = if distance < max_exact {
        distance
    } else {
        let scaled = ((distance as f32 / max_exact as f32).ln()
            / (max_distance as f32 / max_exact as f32).ln()
            * (buckets - max_exact) as f32) as i64;
        (max_exact + scaled).min(buckets - 1)
    };
    (base + offset) as u32
}

#[derive(Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    relative_bias: Option<Embedding>,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
    cache: KvCache,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &T5Config, has_bias: bool, bidirectional: bool) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        let relative_bias = if has_bias {
            Some(embedding(
                cfg.relative_attention_num_buckets,
                cfg.num_heads,
                vb.pp("relative_attention_bias"),
            )?)
        } else {
            None
        };
        Ok(Self {
            q: linear(vb.pp("q"), cfg.d_model, inner)?,
            k: linear(vb.pp("k"), cfg.d_model, inner)?,
            v: linear(vb.pp("v"), cfg.d_model, inner)?,
            o: linear(vb.pp("o"), inner, cfg.d_model)?,
            heads: cfg.num_heads,
            relative_bias,
            bidirectional,
            num_buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
            cache: KvCache::default(),
        })
    }

    /// `[1, heads, q_len, k_len]` bias for queries at `q_start..` over keys `0..k_len`.
    fn position_bias(
        &self,
        q_start: usize,
        q_len: usize,
        k_len: usize,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        let Some(table) = &self.relative_bias else {
            return Ok(None);
        };
        let ids: Vec<u32> = (q_start..q_start + q_len)
            .flat_map(|i| {
                (0..k_len).map(move |j| {
                    bucket(
                        j as i64 - i as i64,
                        self.bidirectional,
                        self.num_buckets,
                        self.max_distance,
                    )
                })
            })
            .collect();
        let ids = Tensor::from_vec(ids, (q_len, k_len), device)?;
        Ok(Some(table.forward(&ids)?.permute((2, 0, 1))?.unsqueeze(0)?))
    }

    /// Self-attention (`kv` None, with the cache when `cached`) or
    /// cross-attention over `kv`. `bias` is the stack's shared position bias.
    fn forward(
        &mut self,
        x: &Tensor,
        kv: Option<&Tensor>,
        bias: Option<&Tensor>,
        cached: bool,
    ) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let source = kv.unwrap_or(x);
        let k = split_heads(&self.k.forward(source)?, self.heads)?;
        let v = split_heads(&self.v.forward(source)?, self.heads)?;
        let (k, v) = if cached {
            self.cache.append(&k, &v)?
        } else {
            (k, v)
        };
        // T5 does not scale the scores.
        let mut scores = q.matmul(&k.t()?.contiguous()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        self.o.forward(&merge_heads(&probs.matmul(&v)?)?)
    }
}

#[derive(Debug)]
struct FeedForward {
    wi: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
    act: Activation,
}

impl FeedForward {
    fn load(vb: VarBuilder, cfg: &T5Config) -> Result<Self> {
        let (gated, act) = cfg.feed_forward()?;
        let (wi, wi_1) = if gated {
            (
                linear(vb.pp("wi_0"), cfg.d_model, cfg.d_ff)?,
                Some(linear(vb.pp("wi_1"), cfg.d_model, cfg.d_ff)?),
            )
        } else {
            (linear(vb.pp("wi"), cfg.d_model, cfg.d_ff)?, None)
        };
        Ok(Self {
            wi,
            wi_1,
            wo: linear(vb.pp("wo"), cfg.d_ff, cfg.d_model)?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.act.forward(&self.wi.forward(x)?)?;
        if let Some(wi_1) = &self.wi_1 {
            h = (h * wi_1.forward(x)?)?;
        }
        self.wo.forward(&h)
    }
}

#[derive(Debug)]
struct Block {
    self_norm: RmsNorm,
    self_attn: Attention,
    cross: Option<(RmsNorm, Attention)>,
    ff_norm: RmsNorm,
    ff: FeedForward,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &T5Config, index: usize, decoder: bool) -> Result<Self> {
        let eps = cfg.layer_norm_epsilon;
        let cross = if decoder {
            let l = vb.pp("layer.1");
            Some((
                RmsNorm::load(l.pp("layer_norm"), cfg.d_model, eps)?,
                Attention::load(l.pp("EncDecAttention"), cfg, false, true)?,
            ))
        } else {
            None
        };
        let ff = vb.pp(if decoder { "layer.2" } else { "layer.1" });
        Ok(Self {
            self_norm: RmsNorm::load(vb.pp("layer.0.layer_norm"), cfg.d_model, eps)?,
            self_attn: Attention::load(vb.pp("layer.0.SelfAttention"), cfg, index == 0, !decoder)?,
            cross,
            ff_norm: RmsNorm::load(ff.pp("layer_norm"), cfg.d_model, eps)?,
            ff: FeedForward::load(ff.pp("DenseReluDense"), cfg)?,
        })
    }
}

/// An encoder or decoder stack sharing the token embedding.
#[derive(Debug)]
struct Stack {
    blocks: Vec<Block>,
    final_norm: RmsNorm,
    decoder: bool,
}

impl Stack {
    fn load(vb: VarBuilder, cfg: &T5Config, layers: usize, decoder: bool) -> Result<Self> {
        Ok(Self {
            blocks: (0..layers)
                .map(|i| Block::load(vb.pp(format!("block.{i}")), cfg, i, decoder))
                .collect::<Result<_>>()?,
            final_norm: RmsNorm::load(
                vb.pp("final_layer_norm"),
                cfg.d_model,
                cfg.layer_norm_epsilon,
            )?,
            decoder,
        })
    }

    fn forward(&mut self, embedded: &Tensor, encoded: Option<&Tensor>) -> Result<Tensor> {
        let device = embedded.device().clone();
        let q_len = embedded.dim(1)?;
        let past = if self.decoder {
            self.blocks.first().map_or(0, |b| b.self_attn.cache.len())
        } else {
            0
        };
        // Layer 0 holds the relative bias; the other layers reuse it.
        let bias = match self.blocks.first() {
            Some(b) => b
                .self_attn
                .position_bias(past, q_len, past + q_len, &device)?,
            None => None,
        };
        let bias = match (bias, self.decoder && q_len > 1) {
            (Some(b), true) => {
                let mask = crate::layers::attention::causal_mask(q_len, past + q_len, &device)?;
                Some(match mask {
                    Some(m) => b.broadcast_add(&m)?,
                    None => b,
                })
            }
            (b, _) => b,
        };
        let mut x = embedded.clone();
        for block in &mut self.blocks {
            let h = block.self_norm.forward(&x)?;
            x = (x + block
                .self_attn
                .forward(&h, None, bias.as_ref(), self.decoder)?)?;
            if let (Some((norm, attn)), Some(encoded)) = (&mut block.cross, encoded) {
                let h = norm.forward(&x)?;
                x = (x + attn.forward(&h, Some(encoded), None, false)?)?;
            }
            let h = block.ff_norm.forward(&x)?;
            x = (x + block.ff.forward(&h)?)?;
        }
        self.final_norm.forward(&x)
    }

    fn reset(&mut self) {
        for block in &mut self.blocks {
            block.self_attn.cache.reset();
        }
    }
}

/// The model with its decoder KV cache.
#[derive(Debug)]
pub struct T5 {
    shared: Embedding,
    encoder: Stack,
    decoder: Stack,
    lm_head: Linear,
    output_scale: f64,
    device: Device,
}

impl T5 {
    pub fn load(vb: VarBuilder<'static>, cfg: &T5Config) -> Result<Self> {
        let shared_name = if vb.contains_tensor("shared.weight") {
            "shared"
        } else {
            "encoder.embed_tokens"
        };
        let shared = embedding(cfg.vocab_size, cfg.d_model, vb.pp(shared_name))?;
        let encoder = Stack::load(vb.pp("encoder"), cfg, cfg.num_layers, false)?;
        let decoder = Stack::load(
            vb.pp("decoder"),
            cfg,
            cfg.num_decoder_layers.unwrap_or(cfg.num_layers),
            true,
        )?;
        // Tied: the decoder output is rescaled before the shared embedding
        // (mesh-tensorflow's convention, kept by transformers).
        let (lm_head, output_scale) = if cfg.tie_word_embeddings {
            (
                Linear::new(shared.embeddings().clone(), None),
                (cfg.d_model as f64).powf(-0.5),
            )
        } else {
            (linear(vb.pp("lm_head"), cfg.d_model, cfg.vocab_size)?, 1.0)
        };
        Ok(Self {
            shared,
            encoder,
            decoder,
            lm_head,
            output_scale,
            device: vb.device().clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn encode(&mut self, input_ids: &Tensor) -> Result<Tensor> {
        let embedded = self.shared.forward(input_ids)?;
        self.encoder.forward(&embedded, None)
    }

    /// Feeds one decoder token (continuing the cache); returns the next
    /// logits as f32 `[vocab]`.
    pub fn decode_step(&mut self, token: u32, encoded: &Tensor) -> Result<Tensor> {
        let ids = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
        let embedded = self.shared.forward(&ids)?;
        let out = (self.decoder.forward(&embedded, Some(encoded))? * self.output_scale)?;
        self.lm_head
            .forward(&out)?
            .squeeze(0)?
            .squeeze(0)?
            .to_dtype(DType::F32)
    }

    pub fn reset(&mut self) {
        self.decoder.reset();
    }
}

impl crate::CheckConfig for T5Config {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        vocab("vocab_size", self.vocab_size)?;
        width("d_model", self.d_model)?;
        width("d_kv", self.d_kv)?;
        width("d_ff", self.d_ff)?;
        count("num_layers", self.num_layers)?;
        if let Some(layers) = self.num_decoder_layers {
            count("num_decoder_layers", layers)?;
        }
        count("num_heads", self.num_heads)?;
        width("num_heads * d_kv", self.num_heads.saturating_mul(self.d_kv))?;
        count(
            "relative_attention_num_buckets",
            self.relative_attention_num_buckets,
        )?;
        positions(
            "relative_attention_max_distance",
            self.relative_attention_max_distance,
        )?;
        positive("layer_norm_epsilon", self.layer_norm_epsilon)?;
        self.feed_forward().map(drop).map_err(ModelError::Tensor)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_follow_transformers() {
        // Decoder (unidirectional, 32 buckets, max 128): exact below 16.
        assert_eq!(bucket(-9, false, 32, 128), 9);
        assert_eq!(bucket(-15, false, 32, 128), 15);
        assert_eq!(bucket(-16, false, 32, 128), 16);
        assert_eq!(bucket(-1000, false, 32, 128), 31);
        assert_eq!(bucket(3, false, 32, 128), 0);
        // Encoder (bidirectional): later keys use the upper half.
        assert_eq!(bucket(-3, true, 32, 128), 3);
        assert_eq!(bucket(3, true, 32, 128), 19);
        assert_eq!(bucket(1000, true, 32, 128), 31);
    }
}
