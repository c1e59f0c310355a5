//! X-CLIP (`XCLIPModel`), written with candle-nn after transformers'
//! `modeling_x_clip.py`: a CLIP vision tower whose layers exchange one
//! message token per frame (cross-frame communication), a multi-frame
//! integration transformer (MIT) over the frames' projected class tokens, the
//! CLIP text transformer, and a prompt generator that lets each text attend
//! to the video's patch features before the scaled cosine logits.
//!
//! Frames are preprocessed one by one with `VideoMAEImageProcessor`'s steps
//! (the CLIP image processor's resize / crop / rescale / normalise with
//! VideoMAE's defaults). The model takes exactly `vision_config.num_frames`
//! frames: the message attention views the batch as videos of that many
//! frames and the MIT's position embedding has one row per frame, so
//! transformers itself fails on any other count. Longer videos are sampled
//! as transformers' video processors sample by default
//! (`floor(i · n / num_frames)`); shorter ones are an error.

use crate::clip::{
    encoder_layer, encoder_layers, first_argmax, l2_normalize, scalar, ClipText, ClipTextConfig,
    ClipVisionConfig, LayerDims, VisionEmbeddings,
};
use crate::layers::activation::Activation;
use crate::layers::attention::MultiHeadAttention;
use crate::layers::encoder::EncoderLayer;
use crate::layers::linear::{linear, linear_no_bias, Linear};
use crate::layers::mlp::Mlp;
use crate::ModelError;
use candle_core::{Device, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, Module, VarBuilder};
use image::RgbImage;
use ipfs_accelerate_media::preprocess::image_processor::{ImageProcessor, ImageProcessorConfig};
use serde::Deserialize;
use serde_json::{json, Value};

/// `config.json`'s `model_type` for X-CLIP.
pub const MODEL_TYPE: &str = "xclip";

/// `XCLIPVisionConfig` (defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct XClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub mit_hidden_size: usize,
    pub mit_intermediate_size: usize,
    pub mit_num_hidden_layers: usize,
    pub mit_num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_frames: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl Default for XClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            mit_hidden_size: 512,
            mit_intermediate_size: 2048,
            mit_num_hidden_layers: 1,
            mit_num_attention_heads: 8,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            num_frames: 8,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

/// `XCLIPConfig`. The text config is CLIP's (same keys and defaults; the
/// eos id does not matter, X-CLIP pools at the largest token id).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct XClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: XClipVisionConfig,
    pub projection_dim: usize,
    pub prompt_layers: usize,
    pub prompt_hidden_act: Activation,
    pub prompt_num_attention_heads: usize,
}

impl Default for XClipConfig {
    fn default() -> Self {
        Self {
            text_config: ClipTextConfig::default(),
            vision_config: XClipVisionConfig::default(),
            projection_dim: 512,
            prompt_layers: 2,
            prompt_hidden_act: Activation::QuickGelu,
            prompt_num_attention_heads: 8,
        }
    }
}

impl XClipVisionConfig {
    /// The CLIP vision config this one extends with the message tokens and
    /// the MIT: the frames' tower is CLIP's.
    /// The CLIP vision tower this one extends.
    pub fn clip(&self) -> ClipVisionConfig {
        ClipVisionConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_channels: self.num_channels,
            image_size: self.image_size,
            patch_size: self.patch_size,
            hidden_act: self.hidden_act,
            layer_norm_eps: self.layer_norm_eps,
        }
    }
}

impl XClipConfig {
    /// Sizes transformers would only trip over at run time (or divide by).
    pub fn check(&self) -> std::result::Result<(), ModelError> {
        let v = &self.vision_config;
        let divides = [
            (
                "vision_config.hidden_size",
                v.hidden_size,
                v.num_attention_heads,
            ),
            (
                "vision_config.mit_hidden_size",
                v.mit_hidden_size,
                v.mit_num_attention_heads,
            ),
            (
                "projection_dim",
                self.projection_dim,
                self.prompt_num_attention_heads,
            ),
            ("vision_config.image_size", v.image_size, v.patch_size),
        ];
        for (what, size, parts) in divides {
            if parts == 0 || size % parts != 0 {
                return Err(ModelError::Config(format!(
                    "{what} {size} is not a multiple of {parts}"
                )));
            }
        }
        if v.num_frames == 0 {
            return Err(ModelError::Config(
                "vision_config.num_frames is 0".to_owned(),
            ));
        }
        // The MIT runs on the projected class tokens.
        if v.mit_hidden_size != self.projection_dim {
            return Err(ModelError::Config(format!(
                "vision_config.mit_hidden_size {} differs from projection_dim {}",
                v.mit_hidden_size, self.projection_dim
            )));
        }
        Ok(())
    }
}

/// `preprocessor_config.json` read as `VideoMAEImageProcessor` reads it:
/// keys it leaves out (or sets to null) take VideoMAE's defaults, not
/// CLIP's (bilinear, mean = std = 0.5, shortest edge 224, 224 × 224 crop).
pub fn frame_processor(config: &Value) -> std::result::Result<ImageProcessor, ModelError> {
    let mut config = config.clone();
    let map = config
        .as_object_mut()
        .ok_or_else(|| ModelError::Config("it is not a JSON object".to_owned()))?;
    let defaults = [
        ("resample", json!(2)),
        ("image_mean", json!([0.5, 0.5, 0.5])),
        ("image_std", json!([0.5, 0.5, 0.5])),
        ("size", json!({"shortest_edge": 224})),
        ("crop_size", json!({"height": 224, "width": 224})),
    ];
    for (key, value) in defaults {
        if map.get(key).is_none_or(Value::is_null) {
            map.insert(key.to_owned(), value);
        }
    }
    let config: ImageProcessorConfig =
        serde_json::from_value(config).map_err(|source| ModelError::ConfigJson { source })?;
    Ok(ImageProcessor::new(&config)?)
}

/// Which of `available` frames a `num_frames`-frame model sees: all when
/// they are as many, else transformers' default uniform sampling.
pub fn frame_indices(
    available: usize,
    num_frames: usize,
) -> std::result::Result<Vec<usize>, ModelError> {
    if available < num_frames {
        return Err(ModelError::Input(format!(
            "the video has {available} frames; the model takes {num_frames} \
             (vision_config.num_frames)"
        )));
    }
    Ok((0..num_frames)
        .map(|i| i * available / num_frames)
        .collect())
}

/// The prompt generator's `XCLIPCrossAttention`: unbiased q/k/v, biased
/// `proj`.
fn cross_attention(d: usize, heads: usize, vb: VarBuilder) -> Result<MultiHeadAttention> {
    Ok(MultiHeadAttention::new(
        linear_no_bias(d, d, vb.pp("q_proj"))?,
        linear_no_bias(d, d, vb.pp("k_proj"))?,
        linear_no_bias(d, d, vb.pp("v_proj"))?,
        linear(d, d, vb.pp("proj"))?,
        heads,
    ))
}

/// `XCLIPVisionEncoderLayer`: before the usual layer, each frame's class
/// token becomes a message token; the messages of one video attend to each
/// other and are appended to every frame's tokens for the self-attention,
/// then dropped again.
#[derive(Debug)]
struct VisionLayer {
    message_fc: Linear,
    message_ln: LayerNorm,
    message_attn: MultiHeadAttention,
    layer: EncoderLayer,
    num_frames: usize,
}

impl VisionLayer {
    fn load(dims: LayerDims, num_frames: usize, vb: VarBuilder) -> Result<Self> {
        let d = dims.hidden;
        Ok(Self {
            message_fc: linear(d, d, vb.pp("message_fc"))?,
            message_ln: layer_norm(d, dims.eps, vb.pp("message_ln"))?,
            message_attn: MultiHeadAttention::load(vb.pp("message_attn"), d, dims.heads, true)?,
            layer: encoder_layer(dims, vb)?,
            num_frames,
        })
    }

    /// `x` `[videos · frames, tokens, d]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (batch_frames, tokens, d) = x.dims3()?;
        let videos = batch_frames / self.num_frames;
        let message = self
            .message_fc
            .forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?
            .reshape((videos, self.num_frames, d))?;
        let h = self.message_ln.forward(&message)?;
        let message = (&message + self.message_attn.forward(&h, &h, None)?)?;
        let x = Tensor::cat(&[x, &message.reshape((batch_frames, 1, d))?], 1)?;
        let x = self.layer.attention_block(&x, None)?.narrow(1, 0, tokens)?;
        self.layer.mlp_block(&x)
    }
}

/// `XCLIPVisionTransformer`, run on every frame.
#[derive(Debug)]
struct Vision {
    embeddings: VisionEmbeddings,
    pre_norm: LayerNorm,
    layers: Vec<VisionLayer>,
    post_norm: LayerNorm,
}

impl Vision {
    fn load(cfg: &XClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let (d, clip) = (cfg.hidden_size, cfg.clip());
        let dims = clip.layer_dims();
        Ok(Self {
            embeddings: VisionEmbeddings::load(&clip, vb.pp("embeddings"))?,
            pre_norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("pre_layernorm"))?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| {
                    VisionLayer::load(dims, cfg.num_frames, vb.pp(format!("encoder.layers.{i}")))
                })
                .collect::<Result<_>>()?,
            post_norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
        })
    }

    /// `(last_hidden_state [frames, 1 + patches, d], pooled [frames, d])`
    /// for `pixel_values` `[frames, 3, h, w]`.
    fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut x = self
            .pre_norm
            .forward(&self.embeddings.forward(pixel_values)?)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let pooled = self.post_norm.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        Ok((x, pooled))
    }
}

/// `XCLIPMultiframeIntegrationTransformer`: frame positions, encoder,
/// residual, mean over frames.
#[derive(Debug)]
struct Mit {
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
}

impl Mit {
    fn load(cfg: &XClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let dims = LayerDims {
            hidden: cfg.mit_hidden_size,
            ffn: cfg.mit_intermediate_size,
            heads: cfg.mit_num_attention_heads,
            eps: cfg.layer_norm_eps,
            activation: cfg.hidden_act,
        };
        Ok(Self {
            position_embedding: vb.get(
                (1, cfg.num_frames, cfg.mit_hidden_size),
                "position_embedding",
            )?,
            layers: encoder_layers(cfg.mit_num_hidden_layers, dims, vb.pp("encoder"))?,
        })
    }

    /// `[videos, frames, d]` → `[videos, d]`.
    fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        let mut x = frames.broadcast_add(&self.position_embedding)?;
        for layer in &self.layers {
            x = layer.forward(&x, None)?;
        }
        (x + frames)?.mean(1)
    }
}

/// `PromptGeneratorLayer`: texts attend to the video's patch features.
#[derive(Debug)]
struct PromptLayer {
    norm1: LayerNorm,
    cross_attn: MultiHeadAttention,
    norm3: LayerNorm,
    mlp: Mlp,
}

impl PromptLayer {
    fn forward(&self, text: &Tensor, visual: &Tensor) -> Result<Tensor> {
        let text = (text
            + self
                .cross_attn
                .forward(&self.norm1.forward(text)?, visual, None)?)?;
        &text + self.mlp.forward(&self.norm3.forward(&text)?)?
    }
}

/// `XCLIPPromptGenerator` (the original's `VideoSpecificPrompt`).
#[derive(Debug)]
struct PromptGenerator {
    layernorm: LayerNorm,
    layers: Vec<PromptLayer>,
    alpha: Tensor,
}

impl PromptGenerator {
    fn load(cfg: &XClipConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.projection_dim;
        // transformers' epsilons: the text config's inside the layers, the
        // vision config's for the visual features.
        let eps = cfg.text_config.layer_norm_eps;
        let layers = (0..cfg.prompt_layers)
            .map(|i| {
                let vb = vb.pp(format!("decoder.{i}"));
                Ok(PromptLayer {
                    norm1: layer_norm(d, eps, vb.pp("norm1"))?,
                    cross_attn: cross_attention(
                        d,
                        cfg.prompt_num_attention_heads,
                        vb.pp("cross_attn"),
                    )?,
                    norm3: layer_norm(d, eps, vb.pp("norm3"))?,
                    // `mlp` is Sequential(Linear, act, Dropout, Linear).
                    mlp: Mlp::load_named(
                        vb.pp("mlp"),
                        ("0", "3"),
                        d,
                        4 * d,
                        cfg.prompt_hidden_act,
                    )?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layernorm: layer_norm(d, cfg.vision_config.layer_norm_eps, vb.pp("layernorm"))?,
            layers,
            alpha: vb.get(d, "alpha")?,
        })
    }

    /// `text` `[videos, texts, d]`, `visual` `[videos, patches, d]`.
    fn forward(&self, text: &Tensor, visual: &Tensor) -> Result<Tensor> {
        let visual = self.layernorm.forward(visual)?;
        let mut text = text.clone();
        for layer in &self.layers {
            text = layer.forward(&text, &visual)?;
        }
        text.broadcast_mul(&self.alpha)
    }
}

/// What `XCLIPModel.forward` returns that the answer uses.
#[derive(Debug)]
pub struct XClipOutput {
    /// `[videos, texts]`.
    pub logits_per_video: Tensor,
    /// Normalised, per video: `[videos, texts, projection_dim]`.
    pub text_embeds: Tensor,
    /// Normalised: `[videos, projection_dim]`.
    pub video_embeds: Tensor,
}

/// The whole model.
#[derive(Debug)]
pub struct XClip {
    pub text: ClipText,
    vision: Vision,
    text_projection: Linear,
    visual_projection: Linear,
    prompts_visual_norm: LayerNorm,
    prompts_visual_projection: Tensor,
    mit: Mit,
    prompts_generator: PromptGenerator,
    logit_scale: f32,
    num_frames: usize,
}

impl XClip {
    pub fn load(cfg: &XClipConfig, vb: VarBuilder) -> Result<Self> {
        let vision = &cfg.vision_config;
        Ok(Self {
            text: ClipText::load(&cfg.text_config, vb.pp("text_model"))?,
            vision: Vision::load(vision, vb.pp("vision_model"))?,
            text_projection: linear_no_bias(
                cfg.text_config.hidden_size,
                cfg.projection_dim,
                vb.pp("text_projection"),
            )?,
            visual_projection: linear_no_bias(
                vision.hidden_size,
                cfg.projection_dim,
                vb.pp("visual_projection"),
            )?,
            prompts_visual_norm: layer_norm(
                vision.hidden_size,
                vision.layer_norm_eps,
                vb.pp("prompts_visual_layernorm"),
            )?,
            prompts_visual_projection: vb.get(
                (vision.hidden_size, cfg.projection_dim),
                "prompts_visual_projection",
            )?,
            mit: Mit::load(vision, vb.pp("mit"))?,
            prompts_generator: PromptGenerator::load(cfg, vb.pp("prompts_generator"))?,
            logit_scale: scalar(&vb, "logit_scale")?,
            num_frames: vision.num_frames,
        })
    }

    /// Frames per video.
    pub fn num_frames(&self) -> usize {
        self.num_frames
    }

    /// Square frame side in pixels.
    pub fn image_size(&self) -> usize {
        self.vision.embeddings.image_size
    }

    /// The projected, not yet prompted text feature `[projection_dim]` of
    /// one unpadded sequence, pooled at the largest id as transformers'
    /// `XCLIPTextTransformer` does (`input_ids.argmax(-1)`: the first EOS,
    /// which is the largest id in CLIP's vocabularies).
    pub fn text_features(&self, ids: &[u32]) -> Result<Tensor> {
        let pooled = self.text.last_hidden_state(ids)?.get(first_argmax(ids))?;
        self.text_projection
            .forward(&pooled.unsqueeze(0)?)?
            .squeeze(0)
    }

    /// `XCLIPModel.forward` for `pixel_values` `[videos, frames, 3, h, w]`
    /// and `text_features` `[texts, projection_dim]` (from
    /// [`Self::text_features`]).
    pub fn forward(&self, pixel_values: &Tensor, text_features: &Tensor) -> Result<XClipOutput> {
        let (videos, frames, channels, h, w) = pixel_values.dims5()?;
        if frames != self.num_frames {
            candle_core::bail!("{frames} frames given; the model takes {}", self.num_frames);
        }
        let (hidden, pooled) =
            self.vision
                .forward(&pixel_values.reshape((videos * frames, channels, h, w))?)?;
        let class_features =
            self.visual_projection
                .forward(&pooled)?
                .reshape((videos, frames, ()))?;
        let video_embeds = self.mit.forward(&class_features)?;

        // Patch features, averaged over frames, condition the texts.
        let patches = hidden.dim(1)? - 1;
        let patch_features = self
            .prompts_visual_norm
            .forward(&hidden.narrow(1, 1, patches)?)?
            .broadcast_matmul(&self.prompts_visual_projection)?
            .reshape((videos, frames, patches, ()))?
            .mean(1)?;
        let text = text_features
            .unsqueeze(0)?
            .repeat((videos, 1, 1))?
            .contiguous()?;
        let text = (&text + self.prompts_generator.forward(&text, &patch_features)?)?;

        let video_embeds = l2_normalize(&video_embeds)?;
        let text_embeds = l2_normalize(&text)?;
        // einsum("bd,bkd->bk", video, scale · text)
        let logits_per_video = (text_embeds
            .matmul(&video_embeds.unsqueeze(2)?)?
            .squeeze(2)?
            * f64::from(self.logit_scale.exp()))?;
        Ok(XClipOutput {
            logits_per_video,
            text_embeds,
            video_embeds,
        })
    }
}

/// `pixel_values` `[1, num_frames, 3, side, side]` of a video's frames,
/// sampled down to the model's frame count when there are more.
pub fn video_pixel_values(
    processor: &ImageProcessor,
    frames: &[RgbImage],
    model: &XClip,
    device: &Device,
) -> std::result::Result<Tensor, ModelError> {
    video_pixels(
        processor,
        frames,
        (model.num_frames(), model.image_size()),
        device,
    )
}

/// [`video_pixel_values`] for a model taking `num_frames` frames of `side`
/// x `side` pixels.
pub fn video_pixels(
    processor: &ImageProcessor,
    frames: &[RgbImage],
    (num_frames, side): (usize, usize),
    device: &Device,
) -> std::result::Result<Tensor, ModelError> {
    let indices = frame_indices(frames.len(), num_frames)?;
    if indices.len() < frames.len() {
        tracing::info!(
            "the video has {} frames; using {} of them: {indices:?}",
            frames.len(),
            indices.len()
        );
    }
    let side = side as u32;
    let mut values = Vec::with_capacity(indices.len() * 3 * (side * side) as usize);
    for &i in &indices {
        let (frame, w, h) = processor.pixel_values(&frames[i]);
        if (w, h) != (side, side) {
            return Err(ModelError::Input(format!(
                "frame {} preprocesses to {w}x{h}; the model takes {side}x{side}",
                i + 1
            )));
        }
        values.extend(frame);
    }
    let (s, n) = (side as usize, indices.len());
    Ok(Tensor::from_vec(values, (1, n, 3, s, s), device)?)
}

impl crate::CheckConfig for XClipVisionConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        Stack {
            prefix: "vision_config.",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check_vision(self.num_channels, self.patch_size, self.image_size)?;
        // The MIT stack's keys carry a `mit_` prefix of their own.
        heads_divide(
            "vision_config.mit_num_attention_heads",
            self.mit_num_attention_heads,
            "vision_config.mit_hidden_size",
            self.mit_hidden_size,
        )?;
        width(
            "vision_config.mit_intermediate_size",
            self.mit_intermediate_size,
        )?;
        count(
            "vision_config.mit_num_hidden_layers",
            self.mit_num_hidden_layers,
        )?;
        count("vision_config.num_frames", self.num_frames)
    }
}

impl crate::CheckConfig for XClipConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        self.text_config.check()?;
        self.vision_config.check()?;
        width("projection_dim", self.projection_dim)?;
        count("prompt_layers", self.prompt_layers)?;
        heads_divide(
            "prompt_num_attention_heads",
            self.prompt_num_attention_heads,
            "projection_dim",
            self.projection_dim,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frame_sampling() {
        assert_eq!(frame_indices(4, 4).unwrap(), [0, 1, 2, 3]);
        assert_eq!(frame_indices(7, 4).unwrap(), [0, 1, 3, 5]);
        assert_eq!(frame_indices(10, 4).unwrap(), [0, 2, 5, 7]);
        assert_eq!(frame_indices(32, 8).unwrap(), [0, 4, 8, 12, 16, 20, 24, 28]);
        let err = frame_indices(3, 8).unwrap_err().to_string();
        assert!(err.contains("has 3 frames; the model takes 8"), "{err}");
    }

    #[test]
    fn videomae_defaults_fill_missing_keys() {
        // microsoft/xclip-base-patch32's file: size as a number, no crop_size.
        let config = json!({
            "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
            "resample": 2, "size": 224
        });
        let processor = frame_processor(&config).unwrap();
        assert_eq!(processor.output_size(320, 240), (224, 224));
        let bare = frame_processor(&json!({"crop_size": null})).unwrap();
        let gray = RgbImage::from_pixel(300, 224, image::Rgb([255, 0, 128]));
        let (values, w, h) = bare.pixel_values(&gray);
        assert_eq!((w, h), (224, 224));
        // mean = std = 0.5: 255 → 1, 0 → -1.
        assert!((values[0] - 1.0).abs() < 1e-6);
        assert!((values[(w * h) as usize] + 1.0).abs() < 1e-6);
        assert!(frame_processor(&json!([1])).is_err());
    }
}
