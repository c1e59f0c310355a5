//! LLaMA (`LlamaForCausalLM`), written with candle-nn.
//!
//! Our own file rather than `candle_transformers::models::llama`: candle's
//! knows only plain and `llama3` RoPE (no `linear`, `dynamic`, `yarn` or
//! `longrope` scaling), derives `head_dim` from the hidden size, has no
//! `attention_bias` / `mlp_bias` and precomputes cos/sin up to
//! `max_position_embeddings`, which dynamic NTK scaling outgrows. RoPE lives
//! in [`super::rope`].

use crate::layers::activation::Activation;
use crate::layers::attention::{
    attend, causal_mask, last_position, merge_heads, repeat_kv, KvCache,
};
use crate::layers::linear::{linear_b, Linear};
use crate::layers::rope::{RopeBase, RopeScaling, RotaryEmbedding};
use crate::CausalLm;
use crate::ModelError;
use candle_core::{Result, Tensor};
use candle_nn::{embedding, rms_norm, Embedding, Module, RmsNorm, VarBuilder};
use serde::Deserialize;
use serde_json::Value;

/// `config.json`'s `model_type` for LLaMA.
pub const MODEL_TYPE: &str = "llama";

/// The `config.json` keys LLaMA reads.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    /// Rows of the embedding and the LM head (may exceed the tokenizer's).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); `num_attention_heads` if absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; `hidden_size / num_attention_heads` if absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Context length (the base of `dynamic` scaling).
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// RoPE scaling (see [`RopeScaling`]).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Biases on q/k/v/o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// MLP activation.
    #[serde(default = "default_activation")]
    pub hidden_act: Activation,
    /// The LM head is the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Phi-3-style pretraining context, read by `longrope` only.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// Rotating part of each head; LLaMA rotates whole heads.
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
}

fn default_max_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}
fn default_activation() -> Activation {
    Activation::Silu
}

impl LlamaConfig {
    fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The rotary embedding this config asks for, or why it is unusable.
    fn rotary(&self) -> std::result::Result<RotaryEmbedding, ModelError> {
        if self.num_attention_heads == 0 || self.kv_heads() == 0 {
            return Err(ModelError::Config(
                "num_attention_heads and num_key_value_heads must be at least 1".to_owned(),
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(ModelError::Config(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.kv_heads()
            )));
        }
        if let Some(partial) = self.partial_rotary_factor.filter(|p| *p != 1.0) {
            // transformers' LLaMA fails on it too (cos/sin do not broadcast).
            return Err(ModelError::Config(format!(
                "partial_rotary_factor {partial} is not supported by LLaMA"
            )));
        }
        let scaling = RopeScaling::from_config(self.rope_scaling.as_ref())?;
        RotaryEmbedding::new(
            RopeBase {
                theta: self.rope_theta,
                dim: self.head_dim(),
                max_position_embeddings: self.max_position_embeddings,
                original_max_position_embeddings: self.original_max_position_embeddings,
            },
            scaling,
        )
    }
}

#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cache: KvCache,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim());
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
        let bias = cfg.attention_bias;
        Ok(Self {
            q_proj: linear_b(h, heads * d, bias, vb.pp("q_proj"))?,
            k_proj: linear_b(h, kv_heads * d, bias, vb.pp("k_proj"))?,
            v_proj: linear_b(h, kv_heads * d, bias, vb.pp("v_proj"))?,
            o_proj: linear_b(heads * d, h, bias, vb.pp("o_proj"))?,
            heads,
            kv_heads,
            head_dim: d,
            cache: KvCache::default(),
        })
    }

    /// `[b, s, heads * d]` → `[b, heads, s, d]`.
    fn split(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        x.reshape((b, s, heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(&mut self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let q = self.split(&self.q_proj.forward(x)?, self.heads)?;
        let k = self.split(&self.k_proj.forward(x)?, self.kv_heads)?;
        let v = self.split(&self.v_proj.forward(x)?, self.kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        // Keys are cached rotated, so each keeps the frequencies it got.
        let (k, v) = self.cache.append(&k, &v)?;
        let n_rep = self.heads / self.kv_heads;
        let k = repeat_kv(k, n_rep)?;
        let v = repeat_kv(v, n_rep)?;
        let mask = causal_mask(q.dim(2)?, k.dim(2)?, x.device())?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let attn = merge_heads(&attend(&q, &k, &v, scale, mask.as_ref())?)?;
        self.o_proj.forward(&attn)
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        let (h, i, bias) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        Ok(Self {
            gate_proj: linear_b(h, i, bias, vb.pp("gate_proj"))?,
            up_proj: linear_b(h, i, bias, vb.pp("up_proj"))?,
            down_proj: linear_b(i, h, bias, vb.pp("down_proj"))?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.act.forward(&self.gate_proj.forward(x)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}

#[derive(Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: rms_norm(h, eps, vb.pp("input_layernorm"))?,
            self_attn: Attention::load(vb.pp("self_attn"), cfg)?,
            post_attention_layernorm: rms_norm(h, eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }

    fn forward(&mut self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, cos, sin)?;
        let x = (x + attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        x + mlp
    }
}

/// LLaMA with its LM head.
#[derive(Debug)]
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: RotaryEmbedding,
    /// `None` for `dynamic` scaling, which is made to run past it.
    context_length: Option<usize>,
}

impl Llama {
    /// Builds the model; a config it cannot honour is a malformed-config
    /// error, missing or misshapen tensors a weights error.
    pub fn load(vb: VarBuilder, cfg: &LlamaConfig) -> std::result::Result<Self, ModelError> {
        Self::load_parts(vb.pp("model"), vb, cfg)
    }

    /// Like [`Self::load`] with the decoder's tensors under `body` and
    /// `lm_head.weight` under `head` (vision-language checkpoints nest the
    /// language model under other prefixes).
    pub fn load_parts(
        body: VarBuilder,
        head: VarBuilder,
        cfg: &LlamaConfig,
    ) -> std::result::Result<Self, ModelError> {
        let rotary = cfg.rotary()?;
        let embed_tokens = embedding(cfg.vocab_size, cfg.hidden_size, body.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(body.pp(format!("layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm = rms_norm(cfg.hidden_size, cfg.rms_norm_eps, body.pp("norm"))?;
        // transformers ties whenever the config says so, whatever the file holds.
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            let weight = head
                .get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")
                .map_err(|source| ModelError::UntiedHead { source })?;
            Linear::new(weight, None)
        };
        let dynamic = matches!(
            RopeScaling::from_config(cfg.rope_scaling.as_ref()),
            Ok(RopeScaling::Dynamic { .. })
        );
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary,
            context_length: (!dynamic).then_some(cfg.max_position_embeddings),
        })
    }
}

impl Llama {
    /// The token embeddings `[1, ids, hidden]`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let device = self.embed_tokens.embeddings().device();
        let ids = Tensor::new(ids, device)?.unsqueeze(0)?;
        self.embed_tokens.forward(&ids)
    }

    /// Runs input embeddings `[1, positions, hidden]` after everything
    /// cached (as `inputs_embeds` in transformers) and returns the logits
    /// of the last position `[vocab]`.
    pub fn forward_embeds(&mut self, embeds: &Tensor) -> Result<Tensor> {
        let device = embeds.device().clone();
        let offset = self.layers.first().map_or(0, |l| l.self_attn.cache.len());
        let (cos, sin) = self.rotary.cos_sin(offset, embeds.dim(1)?, &device)?;
        let mut x = embeds.clone();
        for layer in &mut self.layers {
            x = layer.forward(&x, &cos, &sin)?;
        }
        let s = x.dim(1)?;
        let x = self.norm.forward(&x.narrow(1, s - 1, 1)?)?;
        last_position(&self.lm_head.forward(&x)?)
    }
}

impl CausalLm for Llama {
    fn forward(&mut self, ids: &[u32]) -> Result<Tensor> {
        let embeds = self.embed(ids)?;
        self.forward_embeds(&embeds)
    }

    fn reset(&mut self) {
        for layer in &mut self.layers {
            layer.self_attn.cache.reset();
        }
        self.rotary.reset();
    }

    fn context_length(&self) -> Option<usize> {
        self.context_length
    }
}

impl crate::CheckConfig for LlamaConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        vocab("vocab_size", self.vocab_size)?;
        width("hidden_size", self.hidden_size)?;
        width("intermediate_size", self.intermediate_size)?;
        count("num_hidden_layers", self.num_hidden_layers)?;
        count("num_attention_heads", self.num_attention_heads)?;
        count("num_key_value_heads", self.kv_heads())?;
        match self.head_dim {
            Some(dim) => width("head_dim", dim)?,
            None => heads_divide(
                "num_attention_heads",
                self.num_attention_heads,
                "hidden_size",
                self.hidden_size,
            )?,
        }
        positions("max_position_embeddings", self.max_position_embeddings)?;
        positive("rms_norm_eps", self.rms_norm_eps)?;
        positive("rope_theta", self.rope_theta)?;
        // Divisibility of the heads, the rotary dimension and every
        // rope_scaling value, as the network will be built.
        self.rotary().map(drop)
    }
}
