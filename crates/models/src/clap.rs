//! CLAP (`ClapModel`), written with candle-nn: the HTSAT audio encoder (a
//! Swin transformer over the log-mel spectrogram folded into a square
//! image), a RoBERTa text encoder, projection heads, L2-normalised
//! embeddings and `logits_per_audio = exp(logit_scale_a) · audio · textᵀ`.
//!
//! Follows transformers' `modeling_clap.py`, including its fused variant
//! (`enable_fusion`: attentional feature fusion of three local chunks into
//! the global patch embedding). Configs that transformers cannot run (shape
//! mismatches it would only hit at inference) are refused at load.

use crate::clip::{l2_normalize, scalar};
use crate::layers::activation::Activation;
use crate::layers::attention::MultiHeadAttention;
use crate::layers::encoder::EncoderLayer;
use crate::layers::linear::{linear, linear_b, linear_no_bias, Linear};
use crate::layers::mlp::Mlp;
use crate::ModelError;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

/// `config.json`'s `model_type` for CLAP.
pub const MODEL_TYPE: &str = "clap";

/// A config value that is one integer or a pair.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum IntOrPair {
    One(usize),
    Two([usize; 2]),
}

impl IntOrPair {
    /// The `(height, width)` pair.
    pub fn pair(self) -> (usize, usize) {
        match self {
            Self::One(v) => (v, v),
            Self::Two([a, b]) => (a, b),
        }
    }
}

/// `ClapAudioConfig` (defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClapAudioConfig {
    pub window_size: usize,
    pub num_mel_bins: usize,
    pub spec_size: usize,
    pub hidden_act: Activation,
    pub patch_size: IntOrPair,
    pub patch_stride: IntOrPair,
    pub hidden_size: usize,
    pub depths: Vec<usize>,
    pub num_attention_heads: Vec<usize>,
    pub enable_fusion: bool,
    pub fusion_type: Option<String>,
    pub patch_embed_input_channels: usize,
    pub flatten_patch_embeds: bool,
    pub patch_embeds_hidden_size: usize,
    pub enable_patch_layer_norm: bool,
    pub qkv_bias: bool,
    pub mlp_ratio: f64,
    pub aff_block_r: usize,
    pub layer_norm_eps: f64,
}

impl Default for ClapAudioConfig {
    fn default() -> Self {
        Self {
            window_size: 8,
            num_mel_bins: 64,
            spec_size: 256,
            hidden_act: Activation::Gelu,
            patch_size: IntOrPair::One(4),
            patch_stride: IntOrPair::Two([4, 4]),
            hidden_size: 768,
            depths: vec![2, 2, 6, 2],
            num_attention_heads: vec![4, 8, 16, 32],
            enable_fusion: false,
            fusion_type: None,
            patch_embed_input_channels: 1,
            flatten_patch_embeds: true,
            patch_embeds_hidden_size: 96,
            enable_patch_layer_norm: true,
            qkv_bias: true,
            mlp_ratio: 4.0,
            aff_block_r: 4,
            layer_norm_eps: 1e-5,
        }
    }
}

/// `ClapTextConfig` (defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClapTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: u32,
    pub position_embedding_type: String,
}

impl ClapTextConfig {
    /// Most tokens one text may have: positions start at `pad_token_id + 1`.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.pad_token_id as usize + 1)
    }
}

impl Default for ClapTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 50265,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: Activation::Gelu,
            max_position_embeddings: 514,
            type_vocab_size: 1,
            layer_norm_eps: 1e-12,
            pad_token_id: 1,
            position_embedding_type: "absolute".to_owned(),
        }
    }
}

/// `ClapConfig`. Its `projection_dim` and `projection_hidden_act` override
/// the towers' own, as transformers does.
#[derive(Debug, Clone, Deserialize)]
pub struct ClapConfig {
    #[serde(default)]
    pub text_config: ClapTextConfig,
    #[serde(default)]
    pub audio_config: ClapAudioConfig,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "default_projection_act")]
    pub projection_hidden_act: Activation,
}

fn default_projection_dim() -> usize {
    512
}

fn default_projection_act() -> Activation {
    Activation::Relu
}

// ---------------------------------------------------------------- text ---

/// BERT's attention projections: `self.{query,key,value}` and
/// `output.dense` under `vb`.
fn bert_attention(
    vb: VarBuilder,
    hidden: usize,
    heads: usize,
    qkv_bias: bool,
) -> Result<MultiHeadAttention> {
    let qkv = |name: &str| linear_b(hidden, hidden, qkv_bias, vb.pp("self").pp(name));
    Ok(MultiHeadAttention::new(
        qkv("query")?,
        qkv("key")?,
        qkv("value")?,
        linear(hidden, hidden, vb.pp("output.dense"))?,
        heads,
    ))
}

/// BERT's feed-forward: `intermediate.dense`, then `output.dense`.
fn bert_mlp(vb: VarBuilder, hidden: usize, inner: usize, activation: Activation) -> Result<Mlp> {
    Mlp::load_named(
        vb,
        ("intermediate.dense", "output.dense"),
        hidden,
        inner,
        activation,
    )
}

/// A post-LN BERT layer (`ClapTextLayer`).
fn text_layer(cfg: &ClapTextConfig, vb: VarBuilder) -> Result<EncoderLayer> {
    let (d, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
    let attention = vb.pp("attention");
    Ok(EncoderLayer::new(
        bert_attention(attention.clone(), d, cfg.num_attention_heads, true)?,
        layer_norm(d, eps, attention.pp("output.LayerNorm"))?,
        bert_mlp(vb.clone(), d, cfg.intermediate_size, cfg.hidden_act)?,
        layer_norm(d, eps, vb.pp("output.LayerNorm"))?,
        false,
    ))
}

/// The RoBERTa text tower with its pooler.
#[derive(Debug)]
pub struct ClapText {
    word_embeddings: Embedding,
    position_embeddings: Option<Embedding>,
    token_type_row: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    pooler: Linear,
    pad_token_id: u32,
    max_positions: usize,
}

impl ClapText {
    fn load(cfg: &ClapTextConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        // transformers adds position embeddings only for "absolute"; its
        // attention has no relative variant, so other types get none.
        let position_embeddings = if cfg.position_embedding_type == "absolute" {
            Some(embedding(
                cfg.max_position_embeddings,
                d,
                emb.pp("position_embeddings"),
            )?)
        } else {
            None
        };
        let token_types = emb.get((cfg.type_vocab_size, d), "token_type_embeddings.weight")?;
        Ok(Self {
            word_embeddings: embedding(cfg.vocab_size, d, emb.pp("word_embeddings"))?,
            position_embeddings,
            token_type_row: token_types.get(0)?,
            embeddings_norm: layer_norm(d, cfg.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| text_layer(cfg, vb.pp(format!("encoder.layer.{i}"))))
                .collect::<Result<_>>()?,
            pooler: linear(d, d, vb.pp("pooler.dense"))?,
            pad_token_id: cfg.pad_token_id,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// Most tokens one text may have: positions start at `pad_token_id + 1`.
    pub fn max_tokens(&self) -> usize {
        self.max_positions
            .saturating_sub(self.pad_token_id as usize + 1)
    }

    /// The pooler output `[hidden]` (`tanh(dense(h[0]))`) of one unpadded
    /// sequence. Batched with padding, transformers masks the padded keys
    /// away, so every text's result is this one.
    pub fn pooled(&self, ids: &[u32]) -> Result<Tensor> {
        let device = self.token_type_row.device();
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let mut x = self
            .word_embeddings
            .forward(&input)?
            .broadcast_add(&self.token_type_row)?;
        if let Some(positions) = &self.position_embeddings {
            // create_position_ids_from_input_ids: cumsum of non-pad tokens,
            // pads keep padding_idx.
            let pad = self.pad_token_id;
            let mut seen = 0u32;
            let ids: Vec<u32> = ids
                .iter()
                .map(|&id| {
                    if id == pad {
                        pad
                    } else {
                        seen += 1;
                        seen + pad
                    }
                })
                .collect();
            x = (x + positions.forward(&Tensor::new(ids, device)?.unsqueeze(0)?)?)?;
        }
        let mut x = self.embeddings_norm.forward(&x)?;
        for layer in &self.layers {
            // One unpadded sequence: nothing to mask.
            x = layer.forward(&x, None)?;
        }
        self.pooler
            .forward(&x.squeeze(0)?.narrow(0, 0, 1)?)?
            .tanh()?
            .squeeze(0)
    }
}

// --------------------------------------------------------------- audio ---

/// Eval-mode batch norm as torch computes it: `x · α + β` with
/// `α = weight / sqrt(var + eps)`, `β = bias − mean · α`.
#[derive(Debug)]
struct BatchNorm {
    alpha: Tensor,
    beta: Tensor,
}

impl BatchNorm {
    fn load(channels: usize, vb: VarBuilder) -> Result<Self> {
        let get = |name: &str| -> Result<Vec<f32>> {
            vb.get(channels, name)?.to_dtype(DType::F32)?.to_vec1()
        };
        let (alpha, beta) = batch_norm_affine(
            (&get("weight")?, &get("bias")?),
            (&get("running_mean")?, &get("running_var")?),
        );
        let device = vb.device();
        Ok(Self {
            alpha: Tensor::new(alpha, device)?,
            beta: Tensor::new(beta, device)?,
        })
    }

    /// Normalises dimension `dim` of `x` (the channels).
    fn forward(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        let mut shape = vec![1; x.rank()];
        shape[dim] = self.alpha.dim(0)?;
        x.broadcast_mul(&self.alpha.reshape(shape.clone())?)?
            .broadcast_add(&self.beta.reshape(shape)?)
    }
}

/// Eval-mode batch norm's `(α, β)` from its `(weight, bias)` and
/// `(running_mean, running_var)`, as torch computes them (eps 1e-5).
pub fn batch_norm_affine(
    (weight, bias): (&[f32], &[f32]),
    (mean, var): (&[f32], &[f32]),
) -> (Vec<f32>, Vec<f32>) {
    let alpha: Vec<f32> = weight
        .iter()
        .zip(var)
        .map(|(w, v)| w * (1.0 / (v + 1e-5).sqrt()))
        .collect();
    let beta: Vec<f32> = bias
        .iter()
        .zip(mean.iter().zip(&alpha))
        .map(|(b, (m, a))| b - m * a)
        .collect();
    (alpha, beta)
}

/// A 2-D convolution with per-axis stride and padding (candle's takes one
/// of each): strided by the common divisor, then subsampled.
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: (usize, usize),
    padding: (usize, usize),
}

impl Conv {
    fn load(
        c_in: usize,
        c_out: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c_out, c_in, kernel.0, kernel.1), "weight")?,
            bias: vb.get(c_out, "bias")?,
            stride,
            padding,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (sh, sw) = self.stride;
        let (ph, pw) = self.padding;
        let (x, pad) = if ph == pw {
            (x.clone(), ph)
        } else {
            (x.pad_with_zeros(2, ph, ph)?.pad_with_zeros(3, pw, pw)?, 0)
        };
        let common = gcd(sh, sw);
        let mut y = x.conv2d(&self.weight, pad, common, 1, 1)?;
        for (dim, step) in [(2, sh / common), (3, sw / common)] {
            if step > 1 {
                let keep: Vec<u32> = (0..y.dim(dim)?).step_by(step).map(|i| i as u32).collect();
                y = y.index_select(&Tensor::new(keep, y.device())?, dim)?;
            }
        }
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// Attentional feature fusion (`ClapAudioAFFBlock`).
#[derive(Debug)]
struct FeatureFusion {
    local: [(Conv, BatchNorm); 2],
    global: [(Conv, BatchNorm); 2],
}

impl FeatureFusion {
    fn load(channels: usize, ratio: usize, vb: VarBuilder) -> Result<Self> {
        let inter = channels / ratio.max(1);
        let pair = |vb: VarBuilder, conv: usize, c_in: usize, c_out: usize| -> Result<_> {
            Ok((
                Conv::load(c_in, c_out, (1, 1), (1, 1), (0, 0), vb.pp(conv))?,
                BatchNorm::load(c_out, vb.pp(conv + 1))?,
            ))
        };
        let (local, global) = (vb.pp("local_att"), vb.pp("global_att"));
        Ok(Self {
            local: [
                pair(local.clone(), 0, channels, inter)?,
                pair(local, 3, inter, channels)?,
            ],
            global: [
                pair(global.clone(), 1, channels, inter)?,
                pair(global, 4, inter, channels)?,
            ],
        })
    }

    fn branch(stages: &[(Conv, BatchNorm); 2], x: &Tensor) -> Result<Tensor> {
        let h = stages[0].1.forward(&stages[0].0.forward(x)?, 1)?.relu()?;
        stages[1].1.forward(&stages[1].0.forward(&h)?, 1)
    }

    /// `2·g·w + 2·l·(1 − w)`, `w = sigmoid(local_att(g + l) + global_att(g + l))`.
    fn forward(&self, global: &Tensor, local: &Tensor) -> Result<Tensor> {
        let sum = (global + local)?;
        let pooled = sum.mean_keepdim(3)?.mean_keepdim(2)?;
        let weight = candle_nn::ops::sigmoid(
            &Self::branch(&self.local, &sum)?
                .broadcast_add(&Self::branch(&self.global, &pooled)?)?,
        )?;
        let from_global = ((global * &weight)? * 2.0)?;
        let from_local = ((local * weight.affine(-1.0, 1.0)?)? * 2.0)?;
        from_global + from_local
    }
}

/// One Swin block: (shifted) window attention with relative position
/// bias, then the MLP, both pre-LN with residuals.
#[derive(Debug)]
struct SwinBlock {
    norm_before: LayerNorm,
    attention: MultiHeadAttention,
    // [heads, window², window²]
    position_bias: Tensor,
    // [windows, window², window²] for shifted blocks
    shift_mask: Option<Tensor>,
    norm_after: LayerNorm,
    mlp: Mlp,
    window: usize,
    shift: usize,
    resolution: (usize, usize),
}

impl SwinBlock {
    fn load(
        cfg: &ClapAudioConfig,
        dim: usize,
        heads: usize,
        resolution: (usize, usize),
        shifted: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let window = cfg.window_size;
        // set_shift_and_window_size: a stage no larger than a window is one
        // window, unshifted (smaller ones are refused in ClapAudio::load).
        let shift = if shifted && resolution.0.min(resolution.1) > window {
            window / 2
        } else {
            0
        };
        let attention = vb.pp("attention");
        let table = attention.get(
            ((2 * window - 1) * (2 * window - 1), heads),
            "self.relative_position_bias_table",
        )?;
        let n = window * window;
        let position_bias = table
            .index_select(
                &Tensor::new(relative_position_index(window), vb.device())?,
                0,
            )?
            .reshape((n, n, heads))?
            .permute((2, 0, 1))?
            .contiguous()?;
        let padded = (
            resolution.0.div_ceil(window) * window,
            resolution.1.div_ceil(window) * window,
        );
        let shift_mask = if shift > 0 {
            Some(shift_mask(padded, window, shift, vb.device())?)
        } else {
            None
        };
        let ffn = (cfg.mlp_ratio * dim as f64) as usize;
        Ok(Self {
            norm_before: layer_norm(dim, cfg.layer_norm_eps, vb.pp("layernorm_before"))?,
            attention: bert_attention(attention, dim, heads, cfg.qkv_bias)?,
            position_bias,
            shift_mask,
            norm_after: layer_norm(dim, cfg.layer_norm_eps, vb.pp("layernorm_after"))?,
            mlp: bert_mlp(vb.clone(), dim, ffn, cfg.hidden_act)?,
            window,
            shift,
            resolution,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let (h, w) = self.resolution;
        let ws = self.window;
        let mut grid = self.norm_before.forward(x)?.reshape((b, h, w, c))?;
        let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
        if (hp, wp) != (h, w) {
            grid = grid
                .pad_with_zeros(1, 0, hp - h)?
                .pad_with_zeros(2, 0, wp - w)?;
        }
        let shift = self.shift as i32;
        if shift > 0 {
            grid = grid.roll(-shift, 1)?.roll(-shift, 2)?;
        }
        let windows = grid
            .reshape(vec![b, hp / ws, ws, wp / ws, ws, c])?
            .permute([0, 1, 3, 2, 4, 5])?
            .reshape((b * (hp / ws) * (wp / ws), ws * ws, c))?;
        let attended = self.attention(&windows, b)?;
        let mut grid = attended
            .reshape(vec![b, hp / ws, wp / ws, ws, ws, c])?
            .permute([0, 1, 3, 2, 4, 5])?
            .reshape((b, hp, wp, c))?;
        if shift > 0 {
            grid = grid.roll(shift, 1)?.roll(shift, 2)?;
        }
        if (hp, wp) != (h, w) {
            grid = grid.narrow(1, 0, h)?.narrow(2, 0, w)?;
        }
        let x = (x + grid.contiguous()?.reshape((b, h * w, c))?)?;
        &x + self.mlp.forward(&self.norm_after.forward(&x)?)?
    }

    /// Attention within each window of `[b · windows, window², c]`.
    fn attention(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        let q = self.attention.queries(x)?;
        let (k, v) = self.attention.keys_values(x)?;
        let head_dim = q.dim(D::Minus1)? as f64;
        let mut scores = (q.matmul(&k.t()?.contiguous()?)? / head_dim.sqrt())?
            .broadcast_add(&self.position_bias.unsqueeze(0)?)?;
        if let Some(mask) = &self.shift_mask {
            let (bw, heads, n, _) = scores.dims4()?;
            let windows = bw / batch;
            scores = scores
                .reshape(vec![batch, windows, heads, n, n])?
                .broadcast_add(&mask.unsqueeze(1)?.unsqueeze(0)?)?
                .reshape((bw, heads, n, n))?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        self.attention.output(&probs.matmul(&v)?)
    }
}

/// For each query `i` and key `j` of a window (`window²` each, row-major),
/// the row of the relative position bias table their offset reads
/// (`relative_position_index`).
pub fn relative_position_index(window: usize) -> Vec<u32> {
    let n = window * window;
    (0..n)
        .flat_map(|i| {
            (0..n).map(move |j| {
                let dy = i / window + window - 1 - j / window;
                let dx = i % window + window - 1 - j % window;
                (dy * (2 * window - 1) + dx) as u32
            })
        })
        .collect()
}

/// `get_attn_mask`: −100 between positions of a window that the cyclic
/// shift brought from different regions, 0 elsewhere; `[windows, n, n]`.
fn shift_mask(
    padded: (usize, usize),
    window: usize,
    shift: usize,
    device: &Device,
) -> Result<Tensor> {
    let mask = shift_mask_values(padded, window, shift);
    let (hp, wp) = padded;
    let n = window * window;
    Tensor::from_vec(mask, ((hp / window) * (wp / window), n, n), device)
}

/// [`shift_mask`]'s values, row-major.
pub fn shift_mask_values((hp, wp): (usize, usize), window: usize, shift: usize) -> Vec<f32> {
    let region = |pos: usize, len: usize| -> usize {
        if pos < len - window {
            0
        } else if pos < len - shift {
            1
        } else {
            2
        }
    };
    let n = window * window;
    let mut mask = Vec::with_capacity((hp / window) * (wp / window) * n * n);
    for wy in 0..hp / window {
        for wx in 0..wp / window {
            let labels: Vec<usize> = (0..n)
                .map(|i| {
                    let (y, x) = (wy * window + i / window, wx * window + i % window);
                    region(y, hp) * 3 + region(x, wp)
                })
                .collect();
            for &a in &labels {
                for &b in &labels {
                    mask.push(if a == b { 0f32 } else { -100.0 });
                }
            }
        }
    }
    mask
}

/// `ClapAudioPatchMerging`: 2x2 neighbours concatenated, normed, reduced.
#[derive(Debug)]
struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
}

impl PatchMerging {
    fn load(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(4 * dim, 1e-5, vb.pp("norm"))?,
            reduction: linear_no_bias(4 * dim, 2 * dim, vb.pp("reduction"))?,
        })
    }

    fn forward(&self, x: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let grid = x
            .reshape((b, h, w, c))?
            .pad_with_zeros(1, 0, h % 2)?
            .pad_with_zeros(2, 0, w % 2)?;
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let grid = grid.reshape(vec![b, h2, 2, w2, 2, c])?;
        // Order of transformers' cat: [0::2, 0::2], [1::2, 0::2],
        // [0::2, 1::2], [1::2, 1::2].
        let parts = [(0, 0), (1, 0), (0, 1), (1, 1)]
            .iter()
            .map(|&(dy, dx)| {
                grid.narrow(2, dy, 1)?
                    .narrow(4, dx, 1)?
                    .reshape((b, h2 * w2, c))
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = Tensor::cat(&parts, 2)?;
        self.reduction.forward(&self.norm.forward(&merged)?)
    }
}

#[derive(Debug)]
struct Stage {
    blocks: Vec<SwinBlock>,
    downsample: Option<PatchMerging>,
    resolution: (usize, usize),
}

/// How the features become the square image the patch embedding takes
/// (`reshape_mel2img`), for one input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ImagePlan {
    /// Frames after the first (time) interpolation, if any.
    time_to: Option<usize>,
    /// `(frames, bins)` of the second (frequency) interpolation, if any.
    freq_to: Option<(usize, usize)>,
    /// Frames and bins before folding.
    frames: usize,
    bins: usize,
}

/// How features of `frames` x `bins` become the tower's square input
/// (`reshape_mel2img`) for `(spec_size, num_mel_bins)`; an error says why
/// they cannot, as transformers' forward would find out.
fn image_plan(
    (spec_size, num_mel_bins): (usize, usize),
    frames: usize,
    bins: usize,
) -> std::result::Result<ImagePlan, ModelError> {
    if bins != num_mel_bins {
        return Err(ModelError::Config(format!(
            "the features have {bins} mel bins; the model's batch norm takes num_mel_bins {num_mel_bins}"
        )));
    }
    let freq_ratio = spec_size / num_mel_bins.max(1);
    let width = spec_size * freq_ratio;
    let height = spec_size / freq_ratio.max(1);
    if frames > width || bins > height {
        return Err(ModelError::Config(format!(
            "{frames} frames x {bins} bins exceed the model's {width} x {height} input"
        )));
    }
    let mut plan = ImagePlan {
        time_to: None,
        freq_to: None,
        frames,
        bins,
    };
    if frames < width {
        plan.time_to = Some(width);
        plan.frames = width;
    }
    if bins < height {
        // transformers resizes to the frame count it started with.
        plan.freq_to = Some((frames, height));
        plan.frames = frames;
        plan.bins = height;
    }
    let r = freq_ratio;
    if !plan.frames.is_multiple_of(r) || plan.bins * r != spec_size || plan.frames / r != spec_size
    {
        return Err(ModelError::Config(format!(
            "{frames} frames x {bins} bins do not fold into the model's {0}x{0} input",
            spec_size
        )));
    }
    Ok(plan)
}

/// Checks that features of `frames` x `bins` fit an audio tower of
/// `cfg` (see [`ClapAudio::check_input`]).
pub fn check_feature_size(
    cfg: &ClapAudioConfig,
    frames: usize,
    bins: usize,
) -> std::result::Result<(), ModelError> {
    image_plan((cfg.spec_size, cfg.num_mel_bins), frames, bins).map(|_| ())
}

/// The HTSAT audio tower.
#[derive(Debug)]
pub struct ClapAudio {
    batch_norm: BatchNorm,
    proj: Conv,
    patch_norm: Option<LayerNorm>,
    fusion: Option<(FeatureFusion, Conv)>,
    stages: Vec<Stage>,
    norm: LayerNorm,
    spec_size: usize,
    freq_ratio: usize,
    num_mel_bins: usize,
    grid: (usize, usize),
}

/// Refuses audio configs this file (or transformers) cannot run, before
/// any weight is read.
pub fn check_audio_config(cfg: &ClapAudioConfig) -> std::result::Result<(), ModelError> {
    let layers = cfg.depths.len();
    if layers == 0 || layers != cfg.num_attention_heads.len() {
        return Err(ModelError::Config(
            "depths and num_attention_heads differ in length or are empty".to_owned(),
        ));
    }
    if !cfg.flatten_patch_embeds || cfg.patch_embed_input_channels != 1 {
        return Err(ModelError::Config("only flatten_patch_embeds=true with one input channel is supported (the feature extractor gives one mel image per channel)".to_owned()));
    }
    if cfg.enable_fusion && cfg.fusion_type.as_deref() == Some("channel_map") {
        return Err(ModelError::Config(
            "fusion_type 'channel_map' is not runnable in transformers either".to_owned(),
        ));
    }
    let (stride, window) = (cfg.patch_stride.pair(), cfg.window_size);
    if cfg.num_mel_bins == 0
        || cfg.spec_size < cfg.num_mel_bins
        || window == 0
        || stride.0 == 0
        || stride.1 == 0
    {
        return Err(ModelError::Config(format!(
            "spec_size {} / num_mel_bins {} / window_size {window} / patch_stride {stride:?} are unusable",
            cfg.spec_size, cfg.num_mel_bins
        )));
    }
    let grid = (cfg.spec_size / stride.0, cfg.spec_size / stride.1);
    for (i, &heads) in cfg.num_attention_heads.iter().enumerate() {
        let dim = cfg.patch_embeds_hidden_size << i;
        if heads == 0 || !dim.is_multiple_of(heads) {
            return Err(ModelError::Config(format!(
                "stage {i} has {dim} channels for {heads} heads"
            )));
        }
        let resolution = (grid.0 >> i, grid.1 >> i);
        if resolution.0.min(resolution.1) < window {
            // transformers shrinks the window to the stage but keeps the bias
            // table of the configured one, and fails to add them.
            return Err(ModelError::Config(format!(
                "stage {i} has {}x{} patches, smaller than window_size {window}; transformers cannot run this config",
                resolution.0, resolution.1
            )));
        }
        // transformers reads each stage's size from the grid, not from the
        // merge before it; they must agree.
        if i + 1 < layers
            && (grid.0 >> (i + 1), grid.1 >> (i + 1))
                != (resolution.0.div_ceil(2), resolution.1.div_ceil(2))
        {
            return Err(ModelError::Config(format!(
                "a {}x{} patch grid does not halve {layers} times; transformers cannot run this config",
                grid.0, grid.1
            )));
        }
    }
    let num_features = cfg.patch_embeds_hidden_size << (layers - 1);
    if cfg.hidden_size != num_features {
        return Err(ModelError::Config(format!(
            "hidden_size {} differs from the encoder's {num_features} output channels",
            cfg.hidden_size
        )));
    }
    // The final regrouping (`freq_shape`, `temporal_shape`, `c_freq_bin`) only
    // permutes tokens before the average; check that it is possible.
    let last = (grid.0 >> (layers - 1), grid.1 >> (layers - 1));
    let side = cfg.spec_size >> (layers - 1);
    let (freq_shape, temporal_shape) = (side / stride.0, side / stride.1);
    let c_freq_bin = freq_shape / (cfg.spec_size / cfg.num_mel_bins);
    if freq_shape * temporal_shape != last.0 * last.1
        || c_freq_bin == 0
        || !freq_shape.is_multiple_of(c_freq_bin)
    {
        return Err(ModelError::Config(format!(
            "the last stage's {}x{} patches do not regroup as transformers does ({freq_shape}x{temporal_shape}, {c_freq_bin} bins); transformers cannot run this config",
            last.0, last.1
        )));
    }
    Ok(())
}

impl ClapAudio {
    fn load(cfg: &ClapAudioConfig, vb: VarBuilder) -> Result<Self> {
        check_audio_config(cfg)
            .map_err(|e| candle_core::Error::Msg(format!("audio_config: {e}")))?;
        let vb = vb.pp("audio_encoder");
        let (patch, stride) = (cfg.patch_size.pair(), cfg.patch_stride.pair());
        let grid = (cfg.spec_size / stride.0, cfg.spec_size / stride.1);
        let layers = cfg.depths.len();
        let padding = (
            patch.0.saturating_sub(stride.0) / 2,
            patch.1.saturating_sub(stride.1) / 2,
        );
        let embed_dim = cfg.patch_embeds_hidden_size;
        let pe = vb.pp("patch_embed");
        let proj = Conv::load(1, embed_dim, patch, stride, padding, pe.pp("proj"))?;
        let fusion = if cfg.enable_fusion {
            Some((
                FeatureFusion::load(embed_dim, cfg.aff_block_r, pe.pp("fusion_model"))?,
                Conv::load(
                    1,
                    embed_dim,
                    (patch.0, patch.1 * 3),
                    (stride.0, stride.1 * 3),
                    padding,
                    pe.pp("mel_conv2d"),
                )?,
            ))
        } else {
            None
        };
        let patch_norm = if cfg.enable_patch_layer_norm {
            Some(layer_norm(embed_dim, 1e-5, pe.pp("norm"))?)
        } else {
            None
        };
        let mut stages = Vec::with_capacity(layers);
        for (i, (&depth, &heads)) in cfg.depths.iter().zip(&cfg.num_attention_heads).enumerate() {
            let dim = embed_dim << i;
            let resolution = (grid.0 >> i, grid.1 >> i);
            let stage_vb = vb.pp(format!("layers.{i}"));
            let blocks = (0..depth)
                .map(|j| {
                    SwinBlock::load(
                        cfg,
                        dim,
                        heads,
                        resolution,
                        j % 2 == 1,
                        stage_vb.pp(format!("blocks.{j}")),
                    )
                })
                .collect::<Result<_>>()?;
            let downsample = if i + 1 < layers {
                Some(PatchMerging::load(dim, stage_vb.pp("downsample"))?)
            } else {
                None
            };
            stages.push(Stage {
                blocks,
                downsample,
                resolution,
            });
        }
        let num_features = embed_dim << (layers - 1);
        let freq_ratio = cfg.spec_size / cfg.num_mel_bins;
        Ok(Self {
            batch_norm: BatchNorm::load(cfg.num_mel_bins, vb.pp("batch_norm"))?,
            proj,
            patch_norm,
            fusion,
            stages,
            norm: layer_norm(num_features, 1e-5, vb.pp("norm"))?,
            spec_size: cfg.spec_size,
            freq_ratio,
            num_mel_bins: cfg.num_mel_bins,
            grid,
        })
    }

    /// Whether this tower fuses four-channel features.
    pub fn fused(&self) -> bool {
        self.fusion.is_some()
    }

    /// Checks that features of `frames` x `bins` fit, as transformers'
    /// forward would find out.
    fn plan(&self, frames: usize, bins: usize) -> std::result::Result<ImagePlan, ModelError> {
        image_plan((self.spec_size, self.num_mel_bins), frames, bins)
    }

    /// Checks a feature size at load (see [`Self::plan`]).
    pub fn check_input(&self, frames: usize, bins: usize) -> std::result::Result<(), ModelError> {
        self.plan(frames, bins).map(|_| ())
    }

    /// The pooled output `[1, hidden]` of `input_features` `[1, c, t, f]`.
    pub fn pooled(&self, features: &Tensor, is_longer: bool) -> Result<Tensor> {
        let (b, c, frames, bins) = features.dims4()?;
        let plan = self
            .plan(frames, bins)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut x = self.batch_norm.forward(features, 3)?;
        let device = x.device().clone();
        if let Some(to) = plan.time_to {
            x = resize_axis(&x, 2, to, &device)?;
        }
        if let Some((to_frames, to_bins)) = plan.freq_to {
            x = resize_axis(
                &resize_axis(&x, 2, to_frames, &device)?,
                3,
                to_bins,
                &device,
            )?;
        }
        let r = self.freq_ratio;
        let (t, f) = (plan.frames, plan.bins);
        let image = x
            .reshape((b, c * r, t / r, f))?
            .permute((0, 1, 3, 2))?
            .contiguous()?
            .reshape((b, c, f * r, t / r))?;
        let mut hidden = self.patch_embed(&image, is_longer)?;
        for stage in &self.stages {
            for block in &stage.blocks {
                hidden = block.forward(&hidden)?;
            }
            if let Some(merge) = &stage.downsample {
                hidden = merge.forward(&hidden, stage.resolution)?;
            }
        }
        // The average over all tokens; transformers' regrouping before its
        // AdaptiveAvgPool1d only reorders them.
        self.norm.forward(&hidden)?.mean(1)
    }

    /// `[b, c, H, W]` image to `[b, patches, dim]`.
    fn patch_embed(&self, image: &Tensor, is_longer: bool) -> Result<Tensor> {
        let embedded = match &self.fusion {
            None => self.proj.forward(image)?,
            Some((fuse, mel_conv)) => {
                let global = self.proj.forward(&image.narrow(1, 0, 1)?)?;
                if is_longer {
                    let (b, c, h, w) = image.dims4()?;
                    let local = mel_conv.forward(
                        &image.narrow(1, 1, c - 1)?.contiguous()?.reshape((
                            b * (c - 1),
                            1,
                            h,
                            w,
                        ))?,
                    )?;
                    let (_, features, lh, lw) = local.dims4()?;
                    let local = local
                        .reshape(vec![b, c - 1, features, lh, lw])?
                        .permute([0, 2, 3, 1, 4])?
                        .contiguous()?
                        .reshape((b, features, lh, (c - 1) * lw))?;
                    let width = global.dim(3)?;
                    let local_width = local.dim(3)?;
                    // F.pad to the global width (a negative pad crops).
                    let local = if local_width < width {
                        local.pad_with_zeros(3, 0, width - local_width)?
                    } else {
                        local.narrow(3, 0, width)?
                    };
                    fuse.forward(&global, &local)?
                } else {
                    global
                }
            }
        };
        let (_, _, gh, gw) = embedded.dims4()?;
        if (gh, gw) != self.grid {
            candle_core::bail!(
                "the patch embedding gives {gh}x{gw} patches; the encoder expects {}x{}",
                self.grid.0,
                self.grid.1
            );
        }
        let tokens = embedded.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        match &self.patch_norm {
            Some(norm) => norm.forward(&tokens),
            None => Ok(tokens),
        }
    }
}

/// torch's `interpolate(mode="bicubic", align_corners=True)` along one axis
/// (the other is left as is, which bicubic does exactly), as a matrix
/// product with the f32 weights torch computes.
fn resize_axis(x: &Tensor, dim: usize, to: usize, device: &Device) -> Result<Tensor> {
    let from = x.dim(dim)?;
    if from == to {
        return Ok(x.clone());
    }
    let weights = Tensor::from_vec(cubic_weights(from, to), (to, from), device)?;
    let last = x.rank() - 1;
    let moved = x.transpose(dim, last)?.contiguous()?;
    moved
        .broadcast_matmul(&weights.t()?)?
        .transpose(dim, last)?
        .contiguous()
}

/// `[to][from]` bicubic (A = −0.75) weights with corners aligned; taps
/// beyond the edges fold onto the edge sample, as torch clamps them.
pub fn cubic_weights(from: usize, to: usize) -> Vec<f32> {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = if to > 1 {
        (from - 1) as f32 / (to - 1) as f32
    } else {
        0.0
    };
    let mut weights = vec![0f32; to * from];
    for i in 0..to {
        let real = scale * i as f32;
        let index = real.floor();
        let t = real - index;
        let taps = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, tap) in taps.iter().enumerate() {
            let source = (index as i64 - 1 + k as i64).clamp(0, from as i64 - 1) as usize;
            weights[i * from + source] += tap;
        }
    }
    weights
}

// ------------------------------------------------------------- the pair ---

/// `ClapProjectionLayer`: `linear2(act(linear1(x)))`, `hidden` →
/// `projection_dim`.
fn projection(cfg: &ClapConfig, hidden: usize, vb: VarBuilder) -> Result<Mlp> {
    let dim = cfg.projection_dim;
    Ok(Mlp::new(
        linear(hidden, dim, vb.pp("linear1"))?,
        linear(dim, dim, vb.pp("linear2"))?,
        cfg.projection_hidden_act,
    ))
}

/// The whole dual encoder.
#[derive(Debug)]
pub struct Clap {
    pub text: ClapText,
    pub audio: ClapAudio,
    text_projection: Mlp,
    audio_projection: Mlp,
    logit_scale_a: f32,
}

impl Clap {
    pub fn load(cfg: &ClapConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            text: ClapText::load(&cfg.text_config, vb.pp("text_model"))?,
            audio: ClapAudio::load(&cfg.audio_config, vb.pp("audio_model"))?,
            text_projection: projection(
                cfg,
                cfg.text_config.hidden_size,
                vb.pp("text_projection"),
            )?,
            audio_projection: projection(
                cfg,
                cfg.audio_config.hidden_size,
                vb.pp("audio_projection"),
            )?,
            logit_scale_a: scalar(&vb, "logit_scale_a")?,
        })
    }

    /// L2-normalised text embedding `[projection_dim]`.
    pub fn text_embeds(&self, ids: &[u32]) -> Result<Tensor> {
        let pooled = self.text.pooled(ids)?.unsqueeze(0)?;
        l2_normalize(&self.text_projection.forward(&pooled)?)?.squeeze(0)
    }

    /// L2-normalised audio embeddings `[1, projection_dim]`.
    pub fn audio_embeds(&self, features: &Tensor, is_longer: bool) -> Result<Tensor> {
        l2_normalize(
            &self
                .audio_projection
                .forward(&self.audio.pooled(features, is_longer)?)?,
        )
    }

    /// `exp(logit_scale_a)`: transformers scales `logits_per_audio` by the
    /// audio scale (`logits_per_text` by `logit_scale_t`).
    pub fn audio_scale(&self) -> f32 {
        self.logit_scale_a.exp()
    }
}

impl crate::CheckConfig for ClapTextConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        Stack {
            prefix: "text_config.",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check_text(self.vocab_size, self.max_position_embeddings)?;
        count("text_config.type_vocab_size", self.type_vocab_size)
    }
}

impl crate::CheckConfig for ClapAudioConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        count("audio_config.window_size", self.window_size)?;
        count("audio_config.num_mel_bins", self.num_mel_bins)?;
        within("audio_config.spec_size", self.spec_size, 16384)?;
        width("audio_config.hidden_size", self.hidden_size)?;
        count("audio_config.depths' length", self.depths.len())?;
        if self.num_attention_heads.len() != self.depths.len() {
            return Err(ModelError::Config(format!(
                "audio_config.num_attention_heads has {} entries but depths has {}",
                self.num_attention_heads.len(),
                self.depths.len()
            )));
        }
        for (depth, heads) in self.depths.iter().zip(&self.num_attention_heads) {
            count("audio_config.depths", *depth)?;
            count("audio_config.num_attention_heads", *heads)?;
        }
        for (name, size) in [
            ("patch_size", self.patch_size),
            ("patch_stride", self.patch_stride),
        ] {
            let (a, b) = size.pair();
            count(&format!("audio_config.{name}"), a)?;
            count(&format!("audio_config.{name}"), b)?;
        }
        count(
            "audio_config.patch_embed_input_channels",
            self.patch_embed_input_channels,
        )?;
        width(
            "audio_config.patch_embeds_hidden_size",
            self.patch_embeds_hidden_size,
        )?;
        positive("audio_config.mlp_ratio", self.mlp_ratio)?;
        count("audio_config.aff_block_r", self.aff_block_r)?;
        positive("audio_config.layer_norm_eps", self.layer_norm_eps)
    }
}

impl crate::CheckConfig for ClapConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        self.text_config.check()?;
        self.audio_config.check()?;
        crate::config_check::width("projection_dim", self.projection_dim)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cubic_weights_keep_aligned_corners_and_sum_to_one() {
        let w = cubic_weights(5, 9);
        for row in w.chunks(5) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "{row:?}");
        }
        // Corners map onto corners exactly.
        assert_eq!(&w[..5], &[1.0, 0.0, 0.0, 0.0, 0.0][..]);
        assert_eq!(&w[40..], &[0.0, 0.0, 0.0, 0.0, 1.0][..]);
    }

    #[test]
    fn shift_mask_separates_the_wrapped_regions() {
        let mask = shift_mask((4, 4), 2, 1, &Device::Cpu).unwrap();
        let m: Vec<Vec<Vec<f32>>> = mask.to_vec3().unwrap();
        // The first window lies in one region: nothing masked.
        assert!(m[0].iter().flatten().all(|&v| v == 0.0));
        // The last window mixes four regions.
        assert_eq!(m[3][0], [0.0, -100.0, -100.0, -100.0]);
    }
}
