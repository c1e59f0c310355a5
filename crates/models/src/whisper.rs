//! Whisper (`WhisperForConditionalGeneration`), written with candle-nn.
//!
//! Not candle-transformers' `whisper`: it fixes the MLP width at 4 × d_model
//! (checkpoints set `encoder_ffn_dim`/`decoder_ffn_dim` freely), uses the
//! tanh GELU where transformers uses the exact one, recomputes the encoder's
//! positions instead of loading `embed_positions`, and re-runs the whole
//! decoder prefix at every step. Here the decoder keeps a self-attention
//! cache and the cross-attention keys/values are computed once.

use crate::layers::activation::Activation;
use crate::layers::attention::{causal_mask, KvCache, MultiHeadAttention};
use crate::layers::linear::{linear, linear_no_bias};
use crate::layers::mlp::Mlp;
use crate::ModelError;
use candle_core::{Result, Tensor};
use candle_nn::{
    conv1d, embedding, layer_norm, Conv1d, Conv1dConfig, Embedding, LayerNorm, Module, VarBuilder,
};
use serde::Deserialize;

/// `config.json`'s `model_type` for Whisper.
pub const MODEL_TYPE: &str = "whisper";

/// The `config.json` keys Whisper reads.
#[derive(Debug, Clone, Deserialize)]
pub struct WhisperConfig {
    pub vocab_size: usize,
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub decoder_ffn_dim: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
    #[serde(default = "default_activation")]
    pub activation_function: Activation,
    #[serde(default)]
    pub scale_embedding: bool,
}

fn default_activation() -> Activation {
    Activation::Gelu
}

const LAYER_NORM_EPS: f64 = 1e-5;

/// `WhisperAttention` (no bias on `k_proj`) with the decoder's cache.
#[derive(Debug)]
struct Attention {
    attn: MultiHeadAttention,
    cache: KvCache,
}

impl Attention {
    fn load(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attn: MultiHeadAttention::new(
                linear(dim, dim, vb.pp("q_proj"))?,
                linear_no_bias(dim, dim, vb.pp("k_proj"))?,
                linear(dim, dim, vb.pp("v_proj"))?,
                linear(dim, dim, vb.pp("out_proj"))?,
                heads,
            ),
            cache: KvCache::default(),
        })
    }

    /// Self-attention; `causal` decoders append to their cache.
    fn self_attend(&mut self, x: &Tensor, causal: bool) -> Result<Tensor> {
        let q = self.attn.queries(x)?;
        let (k, v) = self.attn.keys_values(x)?;
        let (k, v, mask) = if causal {
            let (k, v) = self.cache.append(&k, &v)?;
            let mask = causal_mask(q.dim(2)?, k.dim(2)?, x.device())?;
            (k, v, mask)
        } else {
            (k, v, None)
        };
        self.attn.attend(&q, &k, &v, mask.as_ref())
    }

    /// Cross-attention over the encoder states (keys/values computed once).
    fn cross_attend(&mut self, x: &Tensor, encoded: &Tensor) -> Result<Tensor> {
        let q = self.attn.queries(x)?;
        if self.cache.is_empty() {
            let (k, v) = self.attn.keys_values(encoded)?;
            self.cache.append(&k, &v)?;
        }
        let (k, v) = self
            .cache
            .get()
            .ok_or_else(|| candle_core::Error::Msg("empty cache".into()))?;
        self.attn.attend(&q, &k, &v, None)
    }
}

#[derive(Debug)]
struct Layer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    mlp: Mlp,
    final_norm: LayerNorm,
}

impl Layer {
    /// An encoder layer, or a `decoder` one (with cross-attention).
    fn load(cfg: &WhisperConfig, decoder: bool, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        let (heads, ffn, cross) = if decoder {
            let heads = cfg.decoder_attention_heads;
            let cross = (
                Attention::load(d, heads, vb.pp("encoder_attn"))?,
                layer_norm(d, LAYER_NORM_EPS, vb.pp("encoder_attn_layer_norm"))?,
            );
            (heads, cfg.decoder_ffn_dim, Some(cross))
        } else {
            (cfg.encoder_attention_heads, cfg.encoder_ffn_dim, None)
        };
        Ok(Self {
            self_attn: Attention::load(d, heads, vb.pp("self_attn"))?,
            self_attn_norm: layer_norm(d, LAYER_NORM_EPS, vb.pp("self_attn_layer_norm"))?,
            cross,
            mlp: Mlp::load(vb.clone(), d, ffn, cfg.activation_function)?,
            final_norm: layer_norm(d, LAYER_NORM_EPS, vb.pp("final_layer_norm"))?,
        })
    }

    /// `layers.{i}` under `vb`, as many as the encoder or `decoder` has.
    fn stack(cfg: &WhisperConfig, decoder: bool, vb: VarBuilder) -> Result<Vec<Self>> {
        let n = if decoder {
            cfg.decoder_layers
        } else {
            cfg.encoder_layers
        };
        (0..n)
            .map(|i| Self::load(cfg, decoder, vb.pp(format!("layers.{i}"))))
            .collect()
    }

    fn forward(&mut self, x: &Tensor, encoded: Option<&Tensor>) -> Result<Tensor> {
        let causal = encoded.is_some();
        let mut x = (x + self
            .self_attn
            .self_attend(&self.self_attn_norm.forward(x)?, causal)?)?;
        if let (Some((attn, norm)), Some(encoded)) = (&mut self.cross, encoded) {
            x = (&x + attn.cross_attend(&norm.forward(&x)?, encoded)?)?;
        }
        let h = self.mlp.forward(&self.final_norm.forward(&x)?)?;
        x + h
    }

    fn reset(&mut self) {
        self.self_attn.cache.reset();
        if let Some((attn, _)) = &mut self.cross {
            attn.cache.reset();
        }
    }
}

/// Encoder + decoder with the decoder's caches.
#[derive(Debug)]
pub struct Whisper {
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder_layers: Vec<Layer>,
    encoder_norm: LayerNorm,
    embed_tokens: Embedding,
    decoder_positions: Tensor,
    decoder_layers: Vec<Layer>,
    decoder_norm: LayerNorm,
    proj_out: Tensor,
    max_target_positions: usize,
    seen: usize,
}

impl Whisper {
    pub fn load(vb: VarBuilder, cfg: &WhisperConfig) -> Result<Self> {
        if cfg.scale_embedding {
            candle_core::bail!(
                "scale_embedding = true is not supported (no released Whisper uses it)"
            );
        }
        let (d, vb_enc, vb_dec) = (cfg.d_model, vb.pp("model.encoder"), vb.pp("model.decoder"));
        let conv = |stride| Conv1dConfig {
            padding: 1,
            stride,
            ..Default::default()
        };
        let encoder_layers = Layer::stack(cfg, false, vb_enc.clone())?;
        let decoder_layers = Layer::stack(cfg, true, vb_dec.clone())?;
        let embed_tokens = embedding(cfg.vocab_size, d, vb_dec.pp("embed_tokens"))?;
        // The head is tied to the token embedding unless stored.
        let proj_out = if vb.contains_tensor("proj_out.weight") {
            vb.get((cfg.vocab_size, d), "proj_out.weight")?
        } else {
            embed_tokens.embeddings().clone()
        };
        Ok(Self {
            conv1: conv1d(cfg.num_mel_bins, d, 3, conv(1), vb_enc.pp("conv1"))?,
            conv2: conv1d(d, d, 3, conv(2), vb_enc.pp("conv2"))?,
            encoder_positions: vb_enc
                .get((cfg.max_source_positions, d), "embed_positions.weight")?,
            encoder_layers,
            encoder_norm: layer_norm(d, LAYER_NORM_EPS, vb_enc.pp("layer_norm"))?,
            embed_tokens,
            decoder_positions: vb_dec
                .get((cfg.max_target_positions, d), "embed_positions.weight")?,
            decoder_layers,
            decoder_norm: layer_norm(d, LAYER_NORM_EPS, vb_dec.pp("layer_norm"))?,
            proj_out,
            max_target_positions: cfg.max_target_positions,
            seen: 0,
        })
    }

    /// Encoder states `[1, frames / 2, d_model]` for `[1, mels, frames]`
    /// features.
    pub fn encode(&mut self, features: &Tensor) -> Result<Tensor> {
        // transformers applies the exact GELU after the convolutions,
        // whatever `activation_function` says (that one is the MLPs').
        let x = Activation::Gelu.forward(&self.conv1.forward(features)?)?;
        let x = Activation::Gelu.forward(&self.conv2.forward(&x)?)?;
        let x = x.transpose(1, 2)?;
        let positions = x.dim(1)?;
        if positions != self.encoder_positions.dim(0)? {
            candle_core::bail!(
                "the features give {positions} encoder positions; the model has {}",
                self.encoder_positions.dim(0)?
            );
        }
        let mut x = x.broadcast_add(&self.encoder_positions)?;
        for layer in &mut self.encoder_layers {
            x = layer.forward(&x, None)?;
        }
        self.encoder_norm.forward(&x)
    }

    /// Feeds `tokens` after those already seen and returns the logits at
    /// the last one, f32 `[vocab]`.
    pub fn decode(&mut self, tokens: &[u32], encoded: &Tensor) -> Result<Tensor> {
        if self.seen + tokens.len() > self.max_target_positions {
            candle_core::bail!(
                "the decoder holds at most {} positions",
                self.max_target_positions
            );
        }
        let ids = Tensor::new(tokens, encoded.device())?.unsqueeze(0)?;
        let positions = self.decoder_positions.narrow(0, self.seen, tokens.len())?;
        let mut x = self.embed_tokens.forward(&ids)?.broadcast_add(&positions)?;
        for layer in &mut self.decoder_layers {
            x = layer.forward(&x, Some(encoded))?;
        }
        self.seen += tokens.len();
        let x = self.decoder_norm.forward(&x)?;
        let last = x.narrow(1, tokens.len() - 1, 1)?.squeeze(1)?;
        last.matmul(&self.proj_out.t()?)?
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)
    }

    /// Decoder positions left.
    pub fn room(&self) -> usize {
        self.max_target_positions - self.seen
    }

    /// Forgets the decoded tokens (the next request starts afresh).
    pub fn reset(&mut self) {
        self.seen = 0;
        for layer in &mut self.decoder_layers {
            layer.reset();
        }
    }
}

/// Sets `ids` to -inf in f32 `[vocab]` logits.
pub fn suppress(logits: &Tensor, ids: &[u32]) -> Result<Tensor> {
    if ids.is_empty() {
        return Ok(logits.clone());
    }
    let mut values = logits.to_vec1::<f32>()?;
    for &id in ids {
        if let Some(v) = values.get_mut(id as usize) {
            *v = f32::NEG_INFINITY;
        }
    }
    Tensor::new(values, logits.device())
}

impl crate::CheckConfig for WhisperConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        vocab("vocab_size", self.vocab_size)?;
        count("num_mel_bins", self.num_mel_bins)?;
        heads_divide(
            "encoder_attention_heads",
            self.encoder_attention_heads,
            "d_model",
            self.d_model,
        )?;
        heads_divide(
            "decoder_attention_heads",
            self.decoder_attention_heads,
            "d_model",
            self.d_model,
        )?;
        count("encoder_layers", self.encoder_layers)?;
        count("decoder_layers", self.decoder_layers)?;
        width("encoder_ffn_dim", self.encoder_ffn_dim)?;
        width("decoder_ffn_dim", self.decoder_ffn_dim)?;
        positions("max_source_positions", self.max_source_positions)?;
        positions("max_target_positions", self.max_target_positions)
    }
}
