//! GPT-2 (`GPT2LMHeadModel`), written with candle-nn.
//!
//! Conv1D layers store their weight as `[in, out]`; checkpoints come with or
//! without the `transformer.` prefix (the original OpenAI upload has none).

use crate::causal_lm::position_ids;
use crate::layers::activation::Activation;
use crate::layers::attention::{
    attend, causal_mask, last_position, merge_heads, split_heads, KvCache,
};
use crate::layers::linear::Linear;
use crate::layers::mlp::Mlp;
use crate::CausalLm;
use crate::ModelError;
use candle_core::{Result, Tensor};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, LayerNormConfig, Module, VarBuilder};
use serde::Deserialize;

/// `config.json`'s `model_type` for GPT-2.
pub const MODEL_TYPE: &str = "gpt2";

/// The `config.json` keys GPT-2 reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary rows of the embedding.
    pub vocab_size: usize,
    /// Learned positions (the context length).
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP width; `null` means 4 × `n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// MLP activation.
    #[serde(default = "default_activation")]
    pub activation_function: Activation,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Divide scores by √head_dim.
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Also divide scores by the layer's 1-based index.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// The LM head is the token embedding.
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
}

fn default_activation() -> Activation {
    Activation::GeluTanh
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// A Conv1D (`[in, out]` weight) as a Linear.
fn conv1d(vb: VarBuilder, n_in: usize, n_out: usize) -> Result<Linear> {
    let weight = vb.get((n_in, n_out), "weight")?.t()?.contiguous()?;
    let bias = vb.get(n_out, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

fn norm(vb: VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    layer_norm(
        size,
        LayerNormConfig {
            eps,
            ..LayerNormConfig::default()
        },
        vb,
    )
}

#[derive(Debug)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    mlp: Mlp,
    heads: usize,
    scale: f64,
    cache: KvCache,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &Gpt2Config, index: usize) -> Result<Self> {
        let h = cfg.n_embd;
        let inner = cfg.n_inner.unwrap_or(4 * h);
        let head_dim = h / cfg.n_head;
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= (head_dim as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (index + 1) as f64;
        }
        Ok(Self {
            ln_1: norm(vb.pp("ln_1"), h, cfg.layer_norm_epsilon)?,
            c_attn: conv1d(vb.pp("attn.c_attn"), h, 3 * h)?,
            c_proj: conv1d(vb.pp("attn.c_proj"), h, h)?,
            ln_2: norm(vb.pp("ln_2"), h, cfg.layer_norm_epsilon)?,
            mlp: Mlp::new(
                conv1d(vb.pp("mlp.c_fc"), h, inner)?,
                conv1d(vb.pp("mlp.c_proj"), inner, h)?,
                cfg.activation_function,
            ),
            heads: cfg.n_head,
            scale,
            cache: KvCache::default(),
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = x.dim(2)?;
        let qkv = self.c_attn.forward(&self.ln_1.forward(x)?)?;
        let q = split_heads(&qkv.narrow(2, 0, h)?, self.heads)?;
        let k = split_heads(&qkv.narrow(2, h, h)?, self.heads)?;
        let v = split_heads(&qkv.narrow(2, 2 * h, h)?, self.heads)?;
        let (k, v) = self.cache.append(&k, &v)?;
        let mask = causal_mask(q.dim(2)?, k.dim(2)?, x.device())?;
        let attn = merge_heads(&attend(&q, &k, &v, self.scale, mask.as_ref())?)?;
        let x = (x + self.c_proj.forward(&attn)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?)?
    }
}

/// GPT-2 with its LM head.
#[derive(Debug)]
pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
    n_positions: usize,
}

impl Gpt2 {
    /// Builds the model from its weights.
    pub fn load(vb: VarBuilder, cfg: &Gpt2Config) -> Result<Self> {
        let body = if vb.contains_tensor("transformer.wte.weight") {
            vb.pp("transformer")
        } else {
            vb.clone()
        };
        let wte = embedding(cfg.vocab_size, cfg.n_embd, body.pp("wte"))?;
        let wpe = embedding(cfg.n_positions, cfg.n_embd, body.pp("wpe"))?;
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::load(body.pp(format!("h.{i}")), cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = norm(body.pp("ln_f"), cfg.n_embd, cfg.layer_norm_epsilon)?;
        let lm_head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
            Linear::new(wte.embeddings().clone(), None)
        } else {
            Linear::new(
                vb.get((cfg.vocab_size, cfg.n_embd), "lm_head.weight")?,
                None,
            )
        };
        Ok(Self {
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
            n_positions: cfg.n_positions,
        })
    }
}

impl CausalLm for Gpt2 {
    fn forward(&mut self, ids: &[u32]) -> Result<Tensor> {
        let device = self.wte.embeddings().device().clone();
        let offset = self.blocks.first().map_or(0, |b| b.cache.len());
        let positions = position_ids(offset, ids.len(), &device)?;
        let ids = Tensor::new(ids, &device)?.unsqueeze(0)?;
        let mut x = (self.wte.forward(&ids)? + self.wpe.forward(&positions)?)?;
        for block in &mut self.blocks {
            x = block.forward(&x)?;
        }
        let x = self.ln_f.forward(&x)?;
        let s = x.dim(1)?;
        last_position(&self.lm_head.forward(&x.narrow(1, s - 1, 1)?)?)
    }

    fn reset(&mut self) {
        for block in &mut self.blocks {
            block.cache.reset();
        }
    }

    fn context_length(&self) -> Option<usize> {
        Some(self.n_positions)
    }
}

impl crate::CheckConfig for Gpt2Config {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        vocab("vocab_size", self.vocab_size)?;
        heads_divide("n_head", self.n_head, "n_embd", self.n_embd)?;
        count("n_layer", self.n_layer)?;
        positions("n_positions", self.n_positions)?;
        if let Some(inner) = self.n_inner {
            width("n_inner", inner)?;
        }
        positive("layer_norm_epsilon", self.layer_norm_epsilon)
    }
}
