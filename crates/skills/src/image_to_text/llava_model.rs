//! LLaVA's network on the backend that loaded it: candle's model, or the
//! three graphs of our export (`vision_encoder`, `embed_tokens`,
//! `decoder_model` taking `inputs_embeds`) on ONNX Runtime / OpenVINO. The
//! image preprocessing, the packing of tile features and their merge into
//! the prompt's embeddings are shared, so both paths see the same numbers.

use crate::text_generation::onnx_causal_lm::OnnxCausalLm;
use crate::text_generation::CausalLm;
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession};
use ipfs_accelerate_models::llava::{self, pack_image_features, TileGrid};

/// The graph files of the export, relative to the model.
pub(super) const LLAVA_GRAPHS: [&str; 3] = [
    "onnx/vision_encoder.onnx",
    "onnx/embed_tokens.onnx",
    "onnx/decoder_model.onnx",
];

/// LLaVA on ONNX Runtime.
#[derive(Debug)]
pub(super) struct OnnxLlava {
    vision: OrtSession,
    embed: OrtSession,
    language: OnnxCausalLm,
    pinpoints: Vec<(u32, u32)>,
    tile: usize,
    patches_per_side: usize,
}

impl OnnxLlava {
    /// Checks the three graphs.
    pub(super) fn new(
        [vision, embed, decoder]: [OrtSession; 3],
        cfg: &llava::LlavaConfig,
        text_config: &serde_json::Value,
    ) -> Result<Self, SkillError> {
        let kind = vision.kind();
        let unsupported =
            |why: String| SkillError::Backend(BackendError::Unsupported { kind, why });
        if vision.input("pixel_values").is_none()
            || !vision.outputs().iter().any(|o| o.name == "image_features")
        {
            return Err(unsupported(
                "vision_encoder.onnx does not map pixel_values to image_features".to_owned(),
            ));
        }
        if embed.input("input_ids").is_none() {
            return Err(unsupported(
                "embed_tokens.onnx takes no input_ids".to_owned(),
            ));
        }
        let language = OnnxCausalLm::new(decoder, text_config)?;
        if !language.takes_embeds() {
            return Err(unsupported(
                "decoder_model.onnx takes no inputs_embeds".to_owned(),
            ));
        }
        let tile = cfg.vision_config.image_size;
        Ok(Self {
            vision,
            embed,
            language,
            pinpoints: cfg
                .image_grid_pinpoints
                .iter()
                .map(|&[h, w]| (h, w))
                .collect(),
            tile,
            patches_per_side: tile / cfg.vision_config.patch_size.max(1),
        })
    }

    fn image_features(&self, pixels: &Tensor, original: (u32, u32)) -> Result<Tensor, SkillError> {
        let input = OrtInput::F32 {
            shape: pixels.dims().to_vec(),
            data: pixels.flatten_all()?.to_vec1::<f32>()?,
        };
        let outputs = self.vision.run(vec![("pixel_values".to_owned(), input)])?;
        let (shape, data) = outputs.f32("image_features")?;
        let features = Tensor::from_vec(data, shape, &Device::Cpu)?;
        let newline = if self
            .vision
            .outputs()
            .iter()
            .any(|o| o.name == "image_newline")
        {
            let (shape, data) = outputs.f32("image_newline")?;
            Some(Tensor::from_vec(data, shape, &Device::Cpu)?)
        } else {
            None
        };
        let grid = TileGrid {
            pinpoints: &self.pinpoints,
            tile: self.tile,
            patches_per_side: self.patches_per_side,
        };
        Ok(pack_image_features(
            &features,
            newline.as_ref(),
            original,
            &grid,
        )?)
    }

    fn embed(&self, ids: &[u32]) -> Result<Tensor, SkillError> {
        let outputs = self
            .embed
            .run(vec![("input_ids".to_owned(), OrtInput::token_ids(ids))])?;
        let (shape, data) = outputs.f32("inputs_embeds")?;
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }
}

/// LLaVA on candle or on ONNX Runtime.
#[derive(Debug)]
pub(super) enum LlavaModel {
    Candle(Box<llava::Llava>),
    Onnx(Box<OnnxLlava>),
}

impl LlavaModel {
    /// Side of the images the vision tower takes.
    pub(super) fn image_size(&self) -> usize {
        match self {
            Self::Candle(m) => m.image_size(),
            Self::Onnx(m) => m.tile,
        }
    }

    /// The grid resolutions LLaVA-NeXT's model side assumes.
    pub(super) fn pinpoints(&self) -> &[(u32, u32)] {
        match self {
            Self::Candle(m) => m.pinpoints(),
            Self::Onnx(m) => &m.pinpoints,
        }
    }

    /// The rows that replace the image tokens, `[tokens, hidden]`.
    pub(super) fn image_features(
        &self,
        pixels: &Tensor,
        original: (u32, u32),
    ) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle(m) => Ok(m.image_features(pixels, original)?),
            Self::Onnx(m) => m.image_features(pixels, original),
        }
    }

    /// The token embeddings of `ids`, `[1, n, hidden]`.
    pub(super) fn embed(&self, ids: &[u32]) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle(m) => Ok(m.language.embed(ids)?),
            Self::Onnx(m) => m.embed(ids),
        }
    }

    /// Positions the language model holds (`None`: unbounded).
    pub(super) fn context_length(&self) -> Option<usize> {
        match self {
            Self::Candle(m) => m.language.context_length(),
            Self::Onnx(m) => m.language.context_length(),
        }
    }

    /// Forgets the language model's cache.
    pub(super) fn reset(&mut self) {
        match self {
            Self::Candle(m) => m.language.reset(),
            Self::Onnx(m) => m.language.reset(),
        }
    }

    /// The prompt's embeddings `[1, n, hidden]`; the last position's logits.
    pub(super) fn forward_embeds(&mut self, embeds: &Tensor) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle(m) => Ok(m.language.forward_embeds(embeds)?),
            Self::Onnx(m) => m.language.step_embeds(embeds),
        }
    }

    /// One more token; its logits.
    pub(super) fn forward(&mut self, ids: &[u32]) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle(m) => Ok(m.language.forward(ids)?),
            Self::Onnx(m) => {
                let embeds = m.embed(ids)?;
                m.language.step_embeds(&embeds)
            }
        }
    }
}
