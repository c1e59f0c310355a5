//! OPT (`OPTForCausalLM`), written with candle-nn.
//!
//! Covers every layout the published checkpoints use: pre-LayerNorm (most
//! sizes) and post-LayerNorm (opt-350m, `do_layer_norm_before: false`), a
//! token embedding narrower than the hidden size (`word_embed_proj_dim`,
//! with `project_in`/`project_out`), LayerNorms without affine parameters,
//! projections without bias, and weights saved with or without the `model.`
//! prefix (the original uploads were saved from `OPTModel`).

use crate::causal_lm::position_ids;
use crate::layers::activation::Activation;
use crate::layers::attention::{attend, causal_mask, last_position, KvCache, MultiHeadAttention};
use crate::layers::linear::{linear_b, Linear};
use crate::layers::mlp::Mlp;
use crate::CausalLm;
use crate::ModelError;
use candle_core::{DType, Result, Tensor};
use candle_nn::{embedding, Embedding, LayerNorm, Module, VarBuilder};
use serde::Deserialize;

/// `config.json`'s `model_type` for OPT.
pub const MODEL_TYPE: &str = "opt";

/// Learned positions start at index 2 (a fairseq leftover kept by transformers).
const POSITION_OFFSET: usize = 2;
/// `nn.LayerNorm`'s default epsilon, which OPT uses.
const LAYER_NORM_EPS: f64 = 1e-5;

/// The `config.json` keys OPT reads.
#[derive(Debug, Clone, Deserialize)]
pub struct OptConfig {
    /// Vocabulary rows.
    pub vocab_size: usize,
    /// Hidden size of the decoder layers.
    pub hidden_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub ffn_dim: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Embedding width; differs from `hidden_size` in opt-350m.
    #[serde(default)]
    pub word_embed_proj_dim: Option<usize>,
    /// Pre-LayerNorm (true) or post-LayerNorm (false).
    #[serde(default = "yes")]
    pub do_layer_norm_before: bool,
    /// Old checkpoints without the decoder's final LayerNorm.
    #[serde(default, rename = "_remove_final_layer_norm")]
    pub remove_final_layer_norm: bool,
    /// Feed-forward activation.
    #[serde(default = "relu")]
    pub activation_function: Activation,
    /// Biases on the projections.
    #[serde(default = "yes")]
    pub enable_bias: bool,
    /// LayerNorms with weight and bias.
    #[serde(default = "yes")]
    pub layer_norm_elementwise_affine: bool,
    /// The LM head is the token embedding.
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
}

fn yes() -> bool {
    true
}
fn relu() -> Activation {
    Activation::Relu
}

fn norm(vb: VarBuilder, size: usize, affine: bool) -> Result<LayerNorm> {
    if affine {
        let weight = vb.get(size, "weight")?;
        let bias = vb.get(size, "bias")?;
        return Ok(LayerNorm::new(weight, bias, LAYER_NORM_EPS));
    }
    let ones = Tensor::ones(size, DType::F32, vb.device())?.to_dtype(vb.dtype())?;
    let zeros = ones.zeros_like()?;
    Ok(LayerNorm::new(ones, zeros, LAYER_NORM_EPS))
}

#[derive(Debug)]
struct Layer {
    self_attn: MultiHeadAttention,
    self_attn_layer_norm: LayerNorm,
    mlp: Mlp,
    final_layer_norm: LayerNorm,
    pre_norm: bool,
    scale: f64,
    cache: KvCache,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &OptConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let bias = cfg.enable_bias;
        let affine = cfg.layer_norm_elementwise_affine;
        Ok(Self {
            self_attn: MultiHeadAttention::load(
                vb.pp("self_attn"),
                h,
                cfg.num_attention_heads,
                bias,
            )?,
            self_attn_layer_norm: norm(vb.pp("self_attn_layer_norm"), h, affine)?,
            mlp: Mlp::new(
                linear_b(h, cfg.ffn_dim, bias, vb.pp("fc1"))?,
                linear_b(cfg.ffn_dim, h, bias, vb.pp("fc2"))?,
                cfg.activation_function,
            ),
            final_layer_norm: norm(vb.pp("final_layer_norm"), h, affine)?,
            pre_norm: cfg.do_layer_norm_before,
            scale: ((h / cfg.num_attention_heads) as f64).powf(-0.5),
            cache: KvCache::default(),
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let residual = x;
        let h = if self.pre_norm {
            self.self_attn_layer_norm.forward(x)?
        } else {
            x.clone()
        };
        // transformers scales the query before the product; same numbers.
        let q = (self.self_attn.queries(&h)? * self.scale)?;
        let (k, v) = self.self_attn.keys_values(&h)?;
        let (k, v) = self.cache.append(&k, &v)?;
        let mask = causal_mask(q.dim(2)?, k.dim(2)?, x.device())?;
        let attn = attend(&q, &k, &v, 1.0, mask.as_ref())?;
        let mut x = (residual + self.self_attn.output(&attn)?)?;
        if !self.pre_norm {
            x = self.self_attn_layer_norm.forward(&x)?;
        }
        let residual = &x;
        let h = if self.pre_norm {
            self.final_layer_norm.forward(&x)?
        } else {
            x.clone()
        };
        let mut x = (residual + self.mlp.forward(&h)?)?;
        if !self.pre_norm {
            x = self.final_layer_norm.forward(&x)?;
        }
        Ok(x)
    }
}

/// OPT with its LM head.
#[derive(Debug)]
pub struct Opt {
    embed_tokens: Embedding,
    embed_positions: Embedding,
    project_in: Option<Linear>,
    project_out: Option<Linear>,
    layers: Vec<Layer>,
    final_layer_norm: Option<LayerNorm>,
    lm_head: Linear,
    max_positions: usize,
}

impl Opt {
    /// Builds the model from its weights.
    pub fn load(vb: VarBuilder, cfg: &OptConfig) -> Result<Self> {
        let decoder = if vb.contains_tensor("model.decoder.embed_tokens.weight") {
            vb.pp("model.decoder")
        } else {
            vb.pp("decoder")
        };
        let h = cfg.hidden_size;
        let word_dim = cfg.word_embed_proj_dim.unwrap_or(h);
        let embed_tokens = embedding(cfg.vocab_size, word_dim, decoder.pp("embed_tokens"))?;
        let embed_positions = embedding(
            cfg.max_position_embeddings + POSITION_OFFSET,
            h,
            decoder.pp("embed_positions"),
        )?;
        let (project_in, project_out) = if word_dim == h {
            (None, None)
        } else {
            (
                Some(linear_b(word_dim, h, false, decoder.pp("project_in"))?),
                Some(linear_b(h, word_dim, false, decoder.pp("project_out"))?),
            )
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(decoder.pp(format!("layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = if cfg.do_layer_norm_before && !cfg.remove_final_layer_norm {
            Some(norm(
                decoder.pp("final_layer_norm"),
                h,
                cfg.layer_norm_elementwise_affine,
            )?)
        } else {
            None
        };
        let lm_head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            linear_b(word_dim, cfg.vocab_size, false, vb.pp("lm_head"))?
        };
        Ok(Self {
            embed_tokens,
            embed_positions,
            project_in,
            project_out,
            layers,
            final_layer_norm,
            lm_head,
            max_positions: cfg.max_position_embeddings,
        })
    }
}

impl CausalLm for Opt {
    fn forward(&mut self, ids: &[u32]) -> Result<Tensor> {
        let device = self.embed_tokens.embeddings().device().clone();
        let offset = self.layers.first().map_or(0, |l| l.cache.len());
        let positions = position_ids(offset + POSITION_OFFSET, ids.len(), &device)?;
        let ids = Tensor::new(ids, &device)?.unsqueeze(0)?;
        let mut x = self.embed_tokens.forward(&ids)?;
        if let Some(project_in) = &self.project_in {
            x = project_in.forward(&x)?;
        }
        x = (x + self.embed_positions.forward(&positions)?)?;
        for layer in &mut self.layers {
            x = layer.forward(&x)?;
        }
        let s = x.dim(1)?;
        let mut x = x.narrow(1, s - 1, 1)?;
        if let Some(norm) = &self.final_layer_norm {
            x = norm.forward(&x)?;
        }
        if let Some(project_out) = &self.project_out {
            x = project_out.forward(&x)?;
        }
        last_position(&self.lm_head.forward(&x)?)
    }

    fn reset(&mut self) {
        for layer in &mut self.layers {
            layer.cache.reset();
        }
    }

    fn context_length(&self) -> Option<usize> {
        Some(self.max_positions)
    }
}

impl crate::CheckConfig for OptConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        vocab("vocab_size", self.vocab_size)?;
        heads_divide(
            "num_attention_heads",
            self.num_attention_heads,
            "hidden_size",
            self.hidden_size,
        )?;
        count("num_hidden_layers", self.num_hidden_layers)?;
        width("ffn_dim", self.ffn_dim)?;
        positions("max_position_embeddings", self.max_position_embeddings)?;
        if let Some(dim) = self.word_embed_proj_dim {
            width("word_embed_proj_dim", dim)?;
        }
        Ok(())
    }
}
