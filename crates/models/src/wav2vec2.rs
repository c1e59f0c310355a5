//! wav2vec2 (`Wav2Vec2ForCTC`), written with candle-nn: convolutional
//! feature encoder, feature projection, transformer encoder with the
//! convolutional positional embedding, CTC head.
//!
//! Covers the variants released checkpoints use: `feat_extract_norm`
//! `group` (base: GroupNorm after the first convolution only) or `layer`
//! (large/XLS-R: LayerNorm after every convolution), post- or pre-LN
//! transformer (`do_stable_layer_norm`), the positional convolution's weight
//! norm stored as `weight_g`/`weight_v` (older files), as
//! `parametrizations.weight.original0/1` (newer) or already folded.

use crate::layers::activation::Activation;
use crate::layers::attention::MultiHeadAttention;
use crate::layers::encoder::EncoderLayer;
use crate::layers::linear::{linear, linear_b, Linear};
use crate::layers::mlp::Mlp;
use crate::ModelError;
use candle_core::{Result, Tensor};
use candle_nn::{
    group_norm, layer_norm, Conv1d, Conv1dConfig, GroupNorm, LayerNorm, Module, VarBuilder,
};
use serde::Deserialize;

/// `config.json`'s `model_type` for wav2vec2.
pub const MODEL_TYPE: &str = "wav2vec2";

/// The `config.json` keys wav2vec2 reads (defaults are `Wav2Vec2Config`'s).
#[derive(Debug, Clone, Deserialize)]
pub struct Wav2Vec2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_gelu")]
    pub hidden_act: Activation,
    #[serde(default = "default_gelu")]
    pub feat_extract_activation: Activation,
    #[serde(default = "default_group")]
    pub feat_extract_norm: String,
    #[serde(default)]
    pub conv_bias: bool,
    pub conv_dim: Vec<usize>,
    pub conv_kernel: Vec<usize>,
    pub conv_stride: Vec<usize>,
    #[serde(default = "default_pos_kernel")]
    pub num_conv_pos_embeddings: usize,
    #[serde(default = "default_pos_groups")]
    pub num_conv_pos_embedding_groups: usize,
    #[serde(default)]
    pub do_stable_layer_norm: bool,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub add_adapter: bool,
}

fn default_gelu() -> Activation {
    Activation::Gelu
}
fn default_group() -> String {
    "group".to_owned()
}
fn default_pos_kernel() -> usize {
    128
}
fn default_pos_groups() -> usize {
    16
}
fn default_eps() -> f64 {
    1e-5
}

impl Wav2Vec2Config {
    /// Rejects settings this implementation does not run.
    pub fn check(&self) -> std::result::Result<(), ModelError> {
        if !matches!(self.feat_extract_norm.as_str(), "group" | "layer") {
            return Err(ModelError::Config(format!(
                "feat_extract_norm '{}' is not 'group' or 'layer'",
                self.feat_extract_norm
            )));
        }
        let n = self.conv_dim.len();
        if n == 0 || self.conv_kernel.len() != n || self.conv_stride.len() != n {
            return Err(ModelError::Config(
                "conv_dim, conv_kernel and conv_stride must have one equal, non-zero length"
                    .to_owned(),
            ));
        }
        if self.add_adapter {
            return Err(ModelError::Config(
                "add_adapter = true (an adapter after the encoder) is not supported".to_owned(),
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(ModelError::Config(
                "hidden_size must be a multiple of num_attention_heads".to_owned(),
            ));
        }
        Ok(())
    }

    /// Output frames for `samples` input samples (none when too short).
    pub fn frames_for(&self, samples: usize) -> usize {
        self.conv_kernel
            .iter()
            .zip(&self.conv_stride)
            .fold(
                samples,
                |len, (&k, &s)| if len < k { 0 } else { (len - k) / s + 1 },
            )
    }
}

#[derive(Debug)]
enum ConvNorm {
    None,
    Group(GroupNorm),
    Layer(LayerNorm),
}

#[derive(Debug)]
struct FeatureConv {
    conv: Conv1d,
    norm: ConvNorm,
    activation: Activation,
}

impl FeatureConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv.forward(x)?;
        let x = match &self.norm {
            ConvNorm::None => x,
            ConvNorm::Group(norm) => norm.forward(&x)?,
            ConvNorm::Layer(norm) => norm.forward(&x.transpose(1, 2)?)?.transpose(1, 2)?,
        };
        self.activation.forward(&x)
    }
}

/// `Wav2Vec2EncoderLayer`, or with `do_stable_layer_norm` the pre-LN
/// `Wav2Vec2EncoderLayerStableLayerNorm`.
fn encoder_layer(cfg: &Wav2Vec2Config, vb: VarBuilder) -> Result<EncoderLayer> {
    let d = cfg.hidden_size;
    Ok(EncoderLayer::new(
        MultiHeadAttention::load(vb.pp("attention"), d, cfg.num_attention_heads, true)?,
        layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm"))?,
        Mlp::load_named(
            vb.pp("feed_forward"),
            ("intermediate_dense", "output_dense"),
            d,
            cfg.intermediate_size,
            cfg.hidden_act,
        )?,
        layer_norm(d, cfg.layer_norm_eps, vb.pp("final_layer_norm"))?,
        cfg.do_stable_layer_norm,
    ))
}

/// The whole CTC model.
#[derive(Debug)]
pub struct Wav2Vec2ForCtc {
    convs: Vec<FeatureConv>,
    projection_norm: LayerNorm,
    projection: Linear,
    pos_conv: Conv1d,
    pos_kernel: usize,
    pos_activation: Activation,
    encoder_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    stable: bool,
    lm_head: Linear,
}

impl Wav2Vec2ForCtc {
    pub fn load(vb: VarBuilder, cfg: &Wav2Vec2Config) -> Result<Self> {
        cfg.check()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let base = vb.pp("wav2vec2");
        let fe = base.pp("feature_extractor.conv_layers");
        let mut convs = Vec::with_capacity(cfg.conv_dim.len());
        let mut in_dim = 1;
        for (i, ((&out, &kernel), &stride)) in cfg
            .conv_dim
            .iter()
            .zip(&cfg.conv_kernel)
            .zip(&cfg.conv_stride)
            .enumerate()
        {
            let vb = fe.pp(i);
            let weight = vb.get((out, in_dim, kernel), "conv.weight")?;
            let bias = if cfg.conv_bias {
                Some(vb.get(out, "conv.bias")?)
            } else {
                None
            };
            let conv = Conv1d::new(
                weight,
                bias,
                Conv1dConfig {
                    stride,
                    ..Default::default()
                },
            );
            let norm = match (cfg.feat_extract_norm.as_str(), i) {
                ("layer", _) => ConvNorm::Layer(layer_norm(out, 1e-5, vb.pp("layer_norm"))?),
                ("group", 0) => ConvNorm::Group(group_norm(out, out, 1e-5, vb.pp("layer_norm"))?),
                _ => ConvNorm::None,
            };
            convs.push(FeatureConv {
                conv,
                norm,
                activation: cfg.feat_extract_activation,
            });
            in_dim = out;
        }
        let d = cfg.hidden_size;
        let fp = base.pp("feature_projection");
        let enc = base.pp("encoder");
        let groups = cfg.num_conv_pos_embedding_groups;
        let k = cfg.num_conv_pos_embeddings;
        if groups == 0 || !d.is_multiple_of(groups) {
            candle_core::bail!(
                "hidden_size {d} is not a multiple of num_conv_pos_embedding_groups {groups}"
            );
        }
        let pc = enc.pp("pos_conv_embed.conv");
        let pos_weight = positional_conv_weight(&pc, (d, d / groups, k))?;
        let pos_conv = Conv1d::new(
            pos_weight,
            Some(pc.get(d, "bias")?),
            Conv1dConfig {
                padding: k / 2,
                groups,
                ..Default::default()
            },
        );
        Ok(Self {
            convs,
            projection_norm: layer_norm(in_dim, cfg.layer_norm_eps, fp.pp("layer_norm"))?,
            projection: linear(in_dim, d, fp.pp("projection"))?,
            pos_conv,
            pos_kernel: k,
            pos_activation: cfg.feat_extract_activation,
            encoder_norm: layer_norm(d, cfg.layer_norm_eps, enc.pp("layer_norm"))?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| encoder_layer(cfg, enc.pp(format!("layers.{i}"))))
                .collect::<Result<_>>()?,
            stable: cfg.do_stable_layer_norm,
            lm_head: linear_b(d, cfg.vocab_size, true, vb.pp("lm_head"))?,
        })
    }

    /// CTC logits `[frames, vocab]` for `[samples]` input values.
    pub fn forward(&self, input_values: &Tensor) -> Result<Tensor> {
        let mut x = input_values.unsqueeze(0)?.unsqueeze(0)?;
        for conv in &self.convs {
            x = conv.forward(&x)?;
        }
        let x = x.transpose(1, 2)?;
        let x = self
            .projection
            .forward(&self.projection_norm.forward(&x)?)?;
        let mut pos = self.pos_conv.forward(&x.transpose(1, 2)?.contiguous()?)?;
        if self.pos_kernel.is_multiple_of(2) {
            // Even kernels give one extra frame (Wav2Vec2SamePadLayer).
            let frames = pos.dim(2)?;
            pos = pos.narrow(2, 0, frames - 1)?;
        }
        let pos = self.pos_activation.forward(&pos)?.transpose(1, 2)?;
        let mut x = (x + pos)?;
        if !self.stable {
            x = self.encoder_norm.forward(&x)?;
        }
        for layer in &self.layers {
            x = layer.forward(&x, None)?;
        }
        if self.stable {
            x = self.encoder_norm.forward(&x)?;
        }
        self.lm_head.forward(&x)?.squeeze(0)
    }
}

/// The positional convolution's weight, folding weight norm (over every
/// dimension but the kernel's, `dim=2`) when it is stored as magnitude and
/// direction.
fn positional_conv_weight(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    let pairs = [
        ("weight_g", "weight_v"),
        (
            "parametrizations.weight.original0",
            "parametrizations.weight.original1",
        ),
    ];
    for (g_name, v_name) in pairs {
        if vb.contains_tensor(g_name) && vb.contains_tensor(v_name) {
            let g = vb.get((1, 1, shape.2), g_name)?;
            let v = vb.get(shape, v_name)?;
            let norm = v.sqr()?.sum_keepdim(0)?.sum_keepdim(1)?.sqrt()?;
            return v.broadcast_div(&norm)?.broadcast_mul(&g);
        }
    }
    vb.get(shape, "weight")
}

impl crate::CheckConfig for Wav2Vec2Config {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        vocab("vocab_size", self.vocab_size)?;
        Stack {
            prefix: "",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check()?;
        count("conv_dim's length", self.conv_dim.len())?;
        if self.conv_kernel.len() != self.conv_dim.len()
            || self.conv_stride.len() != self.conv_dim.len()
        {
            return Err(ModelError::Config(format!(
                "conv_dim, conv_kernel and conv_stride must have one entry per layer; they have {}, {} and {}",
                self.conv_dim.len(),
                self.conv_kernel.len(),
                self.conv_stride.len()
            )));
        }
        for ((dim, kernel), stride) in self
            .conv_dim
            .iter()
            .zip(&self.conv_kernel)
            .zip(&self.conv_stride)
        {
            width("conv_dim", *dim)?;
            count("conv_kernel", *kernel)?;
            count("conv_stride", *stride)?;
        }
        count("num_conv_pos_embeddings", self.num_conv_pos_embeddings)?;
        heads_divide(
            "num_conv_pos_embedding_groups",
            self.num_conv_pos_embedding_groups,
            "hidden_size",
            self.hidden_size,
        )
    }
}
