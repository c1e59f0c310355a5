//! CLIP (`CLIPModel`), written with candle-nn: text and vision transformers
//! (pre-LN), projections, L2-normalised embeddings, scaled cosine logits.
//! The vision tower is also LLaVA's (it needs every layer's hidden states).
//!
//! Not candle-transformers' `clip`: it fixes the layer-norm epsilon and
//! pools text at `argmax(input_ids)`, which is transformers' behaviour only
//! for configs whose `eos_token_id` is 2; newer configs pool at the first
//! `eos_token_id`.

use crate::layers::activation::Activation;
use crate::layers::attention::{causal_mask, MultiHeadAttention};
use crate::layers::encoder::EncoderLayer;
use crate::layers::linear::{linear_no_bias, Linear};
use crate::layers::mlp::Mlp;
use crate::ModelError;
use candle_core::{Result, Tensor, D};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, Module, VarBuilder};
use serde::Deserialize;

/// `config.json`'s `model_type` for CLIP.
pub const MODEL_TYPE: &str = "clip";

/// `CLIPTextConfig` (defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub eos_token_id: u32,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            eos_token_id: 49407,
        }
    }
}

/// `CLIPVisionConfig` (defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

/// `CLIPConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    #[serde(default)]
    pub text_config: ClipTextConfig,
    #[serde(default)]
    pub vision_config: ClipVisionConfig,
    #[serde(default = "default_projection")]
    pub projection_dim: usize,
}

/// `layer_dims()` for the text and vision configs, which name the encoder's
/// sizes alike.
macro_rules! impl_layer_dims {
    ($($config:ty),+) => {$(
        impl $config {
            pub(crate) fn layer_dims(&self) -> LayerDims {
                LayerDims {
                    hidden: self.hidden_size,
                    ffn: self.intermediate_size,
                    heads: self.num_attention_heads,
                    eps: self.layer_norm_eps,
                    activation: self.hidden_act,
                }
            }
        }
    )+};
}

impl_layer_dims!(ClipTextConfig, ClipVisionConfig);

fn default_projection() -> usize {
    512
}

/// Sizes of one encoder stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerDims {
    pub(crate) hidden: usize,
    pub(crate) ffn: usize,
    pub(crate) heads: usize,
    pub(crate) eps: f64,
    pub(crate) activation: Activation,
}

/// `CLIPEncoderLayer` (pre-LN), also X-CLIP's.
pub(crate) fn encoder_layer(dims: LayerDims, vb: VarBuilder) -> Result<EncoderLayer> {
    let d = dims.hidden;
    Ok(EncoderLayer::new(
        MultiHeadAttention::load(vb.pp("self_attn"), d, dims.heads, true)?,
        layer_norm(d, dims.eps, vb.pp("layer_norm1"))?,
        Mlp::load(vb.pp("mlp"), d, dims.ffn, dims.activation)?,
        layer_norm(d, dims.eps, vb.pp("layer_norm2"))?,
        true,
    ))
}

/// `n` layers at `vb`'s `layers.{i}`.
pub(crate) fn encoder_layers(
    n: usize,
    dims: LayerDims,
    vb: VarBuilder,
) -> Result<Vec<EncoderLayer>> {
    (0..n)
        .map(|i| encoder_layer(dims, vb.pp(format!("layers.{i}"))))
        .collect()
}

/// The text transformer.
#[derive(Debug)]
pub struct ClipText {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_norm: LayerNorm,
    eos_token_id: u32,
    max_positions: usize,
}

impl ClipText {
    pub fn load(cfg: &ClipTextConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        Ok(Self {
            token_embedding: embedding(cfg.vocab_size, d, emb.pp("token_embedding"))?,
            position_embedding: emb.get(
                (cfg.max_position_embeddings, d),
                "position_embedding.weight",
            )?,
            layers: encoder_layers(cfg.num_hidden_layers, cfg.layer_dims(), vb.pp("encoder"))?,
            final_norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("final_layer_norm"))?,
            eos_token_id: cfg.eos_token_id,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// Most tokens one text may have.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The pooled output `[hidden]` of one unpadded sequence.
    pub fn pooled(&self, ids: &[u32]) -> Result<Tensor> {
        let x = self.last_hidden_state(ids)?;
        // transformers: legacy configs (eos id 2) pool at the largest id,
        // others at the first eos.
        let position = if self.eos_token_id == 2 {
            first_argmax(ids)
        } else {
            ids.iter()
                .position(|&id| id == self.eos_token_id)
                .unwrap_or(0)
        };
        x.get(position)
    }

    /// The final-normed hidden states `[seq, hidden]` of one unpadded
    /// sequence (X-CLIP pools them its own way).
    pub fn last_hidden_state(&self, ids: &[u32]) -> Result<Tensor> {
        let device = self.position_embedding.device();
        let n = ids.len();
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let mut x = self
            .token_embedding
            .forward(&input)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, n)?)?;
        let mask = causal_mask(n, n, device)?;
        for layer in &self.layers {
            x = layer.forward(&x, mask.as_ref())?;
        }
        self.final_norm.forward(&x)?.squeeze(0)
    }
}

/// Where `ids` is largest, the first such position (torch's `argmax`).
pub fn first_argmax(ids: &[u32]) -> usize {
    ids.iter()
        .enumerate()
        .max_by_key(|(i, &id)| (id, std::cmp::Reverse(*i)))
        .map_or(0, |(i, _)| i)
}

/// CLIP's vision embeddings: patches, class token, positions (also
/// X-CLIP's, per frame).
#[derive(Debug)]
pub struct VisionEmbeddings {
    patch_embedding: Tensor,
    patch_size: usize,
    pub image_size: usize,
    class_embedding: Tensor,
    position_embedding: Tensor,
}

impl VisionEmbeddings {
    /// From `vb` at `...embeddings`.
    pub fn load(cfg: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let (hidden, image_size, patch_size) = (cfg.hidden_size, cfg.image_size, cfg.patch_size);
        let patches = (image_size / patch_size).pow(2);
        Ok(Self {
            patch_embedding: vb.get(
                (hidden, cfg.num_channels, patch_size, patch_size),
                "patch_embedding.weight",
            )?,
            patch_size,
            image_size,
            class_embedding: vb.get(hidden, "class_embedding")?,
            position_embedding: vb.get((patches + 1, hidden), "position_embedding.weight")?,
        })
    }

    /// `[b, 1 + patches, hidden]` for `pixel_values` `[b, 3, s, s]`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = pixel_values.dims4()?;
        if h != self.image_size || w != self.image_size {
            candle_core::bail!(
                "pixel_values are {h}x{w}; the vision tower takes {0}x{0}",
                self.image_size
            );
        }
        let patches = pixel_values
            .conv2d(&self.patch_embedding, 0, self.patch_size, 1, 1)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let d = self.class_embedding.dim(0)?;
        let class = self.class_embedding.reshape((1, 1, d))?.repeat((b, 1, 1))?;
        Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)
    }
}

/// The vision transformer.
#[derive(Debug)]
pub struct ClipVision {
    embeddings: VisionEmbeddings,
    pre_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_norm: LayerNorm,
}

impl ClipVision {
    pub fn load(cfg: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            embeddings: VisionEmbeddings::load(cfg, vb.pp("embeddings"))?,
            // transformers' attribute name has the typo.
            pre_norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("pre_layrnorm"))?,
            layers: encoder_layers(cfg.num_hidden_layers, cfg.layer_dims(), vb.pp("encoder"))?,
            post_norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
        })
    }

    /// Every hidden state `[b, 1 + patches, hidden]`: the embeddings (after
    /// the pre-norm) first, then each layer's output, as transformers'
    /// `output_hidden_states`.
    pub fn hidden_states(&self, pixel_values: &Tensor) -> Result<Vec<Tensor>> {
        let mut x = self
            .pre_norm
            .forward(&self.embeddings.forward(pixel_values)?)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(&x, None)?;
            states.push(x.clone());
        }
        Ok(states)
    }

    /// The pooled output `[b, hidden]`: the class token, post-normed.
    pub fn pooled(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let states = self.hidden_states(pixel_values)?;
        let last = states
            .last()
            .ok_or_else(|| candle_core::Error::Msg("no layers".into()))?;
        self.post_norm.forward(&last.narrow(1, 0, 1)?.squeeze(1)?)
    }
}

/// The whole dual encoder.
#[derive(Debug)]
pub struct Clip {
    pub text: ClipText,
    pub vision: ClipVision,
    text_projection: Linear,
    visual_projection: Linear,
    logit_scale: f32,
}

impl Clip {
    pub fn load(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            text: ClipText::load(&cfg.text_config, vb.pp("text_model"))?,
            vision: ClipVision::load(&cfg.vision_config, vb.pp("vision_model"))?,
            text_projection: linear_no_bias(
                cfg.text_config.hidden_size,
                cfg.projection_dim,
                vb.pp("text_projection"),
            )?,
            visual_projection: linear_no_bias(
                cfg.vision_config.hidden_size,
                cfg.projection_dim,
                vb.pp("visual_projection"),
            )?,
            logit_scale: scalar(&vb, "logit_scale")?,
        })
    }

    /// L2-normalised text embedding `[projection_dim]`.
    pub fn text_embeds(&self, ids: &[u32]) -> Result<Tensor> {
        l2_normalize(
            &self
                .text_projection
                .forward(&self.text.pooled(ids)?.unsqueeze(0)?)?,
        )?
        .squeeze(0)
    }

    /// L2-normalised image embeddings `[b, projection_dim]`.
    pub fn image_embeds(&self, pixel_values: &Tensor) -> Result<Tensor> {
        l2_normalize(
            &self
                .visual_projection
                .forward(&self.vision.pooled(pixel_values)?)?,
        )
    }

    /// `exp(logit_scale)`.
    pub fn scale(&self) -> f32 {
        self.logit_scale.exp()
    }
}

/// The scalar parameter `name` (a logit scale) as f32.
pub fn scalar(vb: &VarBuilder, name: &str) -> Result<f32> {
    vb.get((), name)?
        .to_dtype(candle_core::DType::F32)?
        .to_scalar::<f32>()
}

/// Rows divided by their L2 norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

impl crate::CheckConfig for ClipTextConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        crate::config_check::Stack {
            prefix: "text_config.",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check_text(self.vocab_size, self.max_position_embeddings)
    }
}

impl crate::CheckConfig for ClipVisionConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        crate::config_check::Stack {
            prefix: "vision_config.",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check_vision(self.num_channels, self.patch_size, self.image_size)
    }
}

impl crate::CheckConfig for ClipConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        self.text_config.check()?;
        self.vision_config.check()?;
        crate::config_check::width("projection_dim", self.projection_dim)
    }
}
