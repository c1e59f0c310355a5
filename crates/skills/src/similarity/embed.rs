//! Embeddings of single items in a dual encoder's shared space: a text
//! through the text tower, an image (CLIP) or a recording (CLAP) through
//! the media tower, each normalised as the similarity logits use them, so
//! a client can compare vectors it stored at different times. CLIP's images
//! run through the vision tower as one batch.

use super::{Model, SimilarityModel};
use crate::SkillError;
use candle_core::{Device, Tensor};
use image::RgbImage;
use ipfs_accelerate_media::{resample, Audio};

/// One input to embed.
#[derive(Debug, Clone, Copy)]
pub enum EmbedItem<'a> {
    /// A text (text tower).
    Text(&'a str),
    /// An image (CLIP's vision tower).
    Image(&'a RgbImage),
    /// A recording, mono, any rate (CLAP's audio tower).
    Audio(&'a Audio),
}

impl EmbedItem<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Text(_) => "a text",
            Self::Image(_) => "an image",
            Self::Audio(_) => "audio",
        }
    }
}

impl SimilarityModel {
    /// One normalised vector per item, in order (`text_embeds` /
    /// `image_embeds` / `audio_embeds` of transformers' model output).
    ///
    /// X-CLIP has no such space: its text embeddings are conditioned on the
    /// video they are compared with, so it is refused.
    pub fn embed(&self, items: &[EmbedItem<'_>]) -> Result<Vec<Vec<f32>>, SkillError> {
        if items.is_empty() {
            return Err(SkillError::InvalidInput("nothing to embed".to_owned()));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; items.len()];
        // CLIP's vision tower takes a batch: the images go through it
        // together (every image is resized and cropped to the same side).
        if let Model::Clip { model, processor } = &self.model {
            let images: Vec<(usize, &RgbImage)> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    EmbedItem::Image(image) => Some((i, *image)),
                    _ => None,
                })
                .collect();
            if images.len() > 1 {
                let mut values = Vec::new();
                let mut side = (0, 0);
                for (_, image) in &images {
                    let (pixels, w, h) = processor.pixel_values(image);
                    side = (h as usize, w as usize);
                    values.extend(pixels);
                }
                let pixels =
                    Tensor::from_vec(values, (images.len(), 3, side.0, side.1), &self.device)?;
                let rows: Vec<Vec<f32>> = model
                    .image_embeds(&pixels)?
                    .to_device(&Device::Cpu)?
                    .to_vec2()?;
                for ((i, _), row) in images.iter().zip(rows) {
                    vectors[*i] = Some(row);
                }
            }
        }
        items
            .iter()
            .zip(vectors)
            .map(|(item, done)| match done {
                Some(vector) => Ok(vector),
                None => self.embed_one(*item),
            })
            .collect()
    }

    fn embed_one(&self, item: EmbedItem<'_>) -> Result<Vec<f32>, SkillError> {
        let texts = |text: &str| vec![text.to_owned()];
        let row: Tensor = match (&self.model, item) {
            (Model::Clip { model, .. }, EmbedItem::Text(text)) => self
                .text_embeds(&texts(text), model.text.max_positions(), |ids| {
                    model.text_embeds(ids)
                })?,
            (Model::Clip { model, processor }, EmbedItem::Image(image)) => {
                let (values, w, h) = processor.pixel_values(image);
                let pixels =
                    Tensor::from_vec(values, (1, 3, h as usize, w as usize), &self.device)?;
                model.image_embeds(&pixels)?
            }
            // The graph takes texts and an image together; the towers do
            // not meet before the logits, so the other input's content does
            // not change the vector asked for.
            (
                Model::ClipOnnx {
                    model,
                    max_positions,
                    pad_id,
                    image_side,
                    ..
                },
                EmbedItem::Text(text),
            ) => {
                let side = *image_side;
                let batch = self.padded_batch(&texts(text), *max_positions, *pad_id)?;
                model
                    .forward(batch, vec![0.0; 3 * side * side], vec![1, 3, side, side])?
                    .text_embeds
            }
            (
                Model::ClipOnnx {
                    model,
                    processor,
                    max_positions,
                    pad_id,
                    ..
                },
                EmbedItem::Image(image),
            ) => {
                let (values, w, h) = processor.pixel_values(image);
                let batch = self.padded_batch(&texts(""), *max_positions, *pad_id)?;
                model
                    .forward(batch, values, vec![1, 3, h as usize, w as usize])?
                    .media_embeds
            }
            (Model::Clap { model, .. }, EmbedItem::Text(text)) => {
                self.text_embeds(&texts(text), model.text.max_tokens(), |ids| {
                    model.text_embeds(ids)
                })?
            }
            (Model::Clap { model, extractor }, EmbedItem::Audio(audio)) => {
                if audio.samples.is_empty() {
                    return Err(SkillError::InvalidInput(
                        "the audio holds no samples".to_owned(),
                    ));
                }
                let audio = resample(audio, extractor.config().sampling_rate)?;
                let features = extractor.features(&audio.samples)?;
                let shape = (1, features.channels, features.frames, features.mels);
                let input = Tensor::from_vec(features.values, shape, &self.device)?;
                model.audio_embeds(&input, features.is_longer)?
            }
            (
                Model::ClapOnnx {
                    model,
                    max_tokens,
                    pad_id,
                    ..
                },
                EmbedItem::Text(text),
            ) => model.text_embeds(self.padded_batch(&texts(text), *max_tokens, *pad_id)?)?,
            (Model::ClapOnnx {
                model, extractor, ..
            }, EmbedItem::Audio(audio)) => {
                if audio.samples.is_empty() {
                    return Err(SkillError::InvalidInput(
                        "the audio holds no samples".to_owned(),
                    ));
                }
                super::clap_audio_onnx(model, extractor, audio)?.0
            }
            (Model::XClip { .. } | Model::XClipOnnx { .. }, _) => {
                return Err(SkillError::InvalidInput(format!(
                    "model '{}' (X-CLIP) has no shared embedding space: its text embeddings depend on the video they are compared with; use similarity",
                    self.loaded.name
                )))
            }
            (model, item) => {
                return Err(SkillError::InvalidInput(format!(
                    "model '{}' embeds texts and {}, not {}",
                    self.loaded.name,
                    model.takes().split(" (").next().unwrap_or_default(),
                    item.name()
                )))
            }
        };
        let row = row.to_device(&Device::Cpu)?.flatten_all()?;
        Ok(row.to_vec1()?)
    }
}
