//! CLAP as two ONNX graphs on ONNX Runtime (the layout our exporter writes
//! and transformers.js publishes): `text_model.onnx` turns the padded text
//! batch into normalised `text_embeds`; `audio_model.onnx` turns the
//! feature extractor's `input_features` (and `is_longer` for a fused model)
//! into normalised `audio_embeds`, with `logit_scale` beside them (read
//! from the weights when a graph, like transformers.js's, has none).

use crate::SkillError;
use candle_core::Tensor;
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession};

use super::onnx_clip::{output_tensor, require_io, TextBatch};

/// The graph files, relative to the model.
pub(crate) const CLAP_GRAPHS: [&str; 2] = ["onnx/text_model.onnx", "onnx/audio_model.onnx"];

const IDS: &str = "input_ids";
const MASK: &str = "attention_mask";
const FEATURES: &str = "input_features";
const IS_LONGER: &str = "is_longer";
const TEXT_EMBEDS: &str = "text_embeds";
const AUDIO_EMBEDS: &str = "audio_embeds";
const LOGIT_SCALE: &str = "logit_scale";

/// CLAP's two graphs on ONNX Runtime.
#[derive(Debug)]
pub(crate) struct OnnxClap {
    text: OrtSession,
    audio: OrtSession,
    /// Whether the audio graph takes `is_longer` (a fused model).
    fused: bool,
    /// `exp(logit_scale_a)` when the audio graph does not output it
    /// (transformers.js's CLAP graphs): read from the weights.
    scale: Option<f32>,
}

/// One audio clip's features, as the extractor gives them.
pub(crate) struct AudioInput {
    /// `[channels, frames, mels]`, row-major.
    pub values: Vec<f32>,
    pub channels: usize,
    pub frames: usize,
    pub mels: usize,
    pub is_longer: bool,
}

impl OnnxClap {
    /// Checks that the graphs have CLAP's inputs and outputs, and that the
    /// audio graph takes `is_longer` exactly when the model is `fused`.
    /// `scale` (`exp(logit_scale_a)` from the weights) stands in for an
    /// audio graph without a `logit_scale` output.
    pub(crate) fn new(
        text: OrtSession,
        audio: OrtSession,
        fused: bool,
        scale: impl FnOnce() -> Result<f32, SkillError>,
    ) -> Result<Self, SkillError> {
        require_io(&text, (&[IDS, MASK], &[TEXT_EMBEDS]), "our CLAP export")?;
        require_io(&audio, (&[FEATURES], &[AUDIO_EMBEDS]), "our CLAP export")?;
        if audio.input(IS_LONGER).is_some() != fused {
            return Err(SkillError::Backend(BackendError::Unsupported {
                kind: audio.kind(),
                why: format!(
                    "the CLAP audio graph {} 'is_longer', but the model is {}",
                    if fused { "lacks" } else { "takes" },
                    if fused { "fused" } else { "not fused" }
                ),
            }));
        }
        let scale = if audio.outputs().iter().any(|o| o.name == LOGIT_SCALE) {
            None
        } else {
            Some(scale()?)
        };
        Ok(Self {
            text,
            audio,
            fused,
            scale,
        })
    }

    /// Normalised embeddings `[rows, dim]` of a padded text batch.
    pub(crate) fn text_embeds(&self, batch: TextBatch) -> Result<Tensor, SkillError> {
        let TextBatch {
            rows,
            seq,
            ids,
            mask,
        } = batch;
        let outputs = self.text.run(vec![
            (
                IDS.to_owned(),
                OrtInput::I64 {
                    shape: vec![rows, seq],
                    data: ids,
                },
            ),
            (
                MASK.to_owned(),
                OrtInput::I64 {
                    shape: vec![rows, seq],
                    data: mask,
                },
            ),
        ])?;
        output_tensor(&self.text, &outputs, TEXT_EMBEDS, &[rows, 0])
    }

    /// Normalised embeddings `[1, dim]` of one clip, and
    /// `exp(logit_scale_a)`.
    pub(crate) fn audio_embeds(&self, input: AudioInput) -> Result<(Tensor, f32), SkillError> {
        let AudioInput {
            values,
            channels,
            frames,
            mels,
            is_longer,
        } = input;
        let mut inputs = vec![(
            FEATURES.to_owned(),
            OrtInput::F32 {
                shape: vec![1, channels, frames, mels],
                data: values,
            },
        )];
        if self.fused {
            inputs.push((
                IS_LONGER.to_owned(),
                OrtInput::I64 {
                    shape: vec![1, 1],
                    data: vec![i64::from(is_longer)],
                },
            ));
        }
        let outputs = self.audio.run(inputs)?;
        let embeds = output_tensor(&self.audio, &outputs, AUDIO_EMBEDS, &[1, 0])?;
        if let Some(scale) = self.scale {
            return Ok((embeds, scale));
        }
        let (_, scale) = outputs.f32(LOGIT_SCALE)?;
        let scale = scale.first().copied().ok_or_else(|| {
            SkillError::Backend(BackendError::Run {
                kind: self.audio.kind(),
                detail: format!("'{LOGIT_SCALE}' is empty"),
            })
        })?;
        Ok((embeds, scale))
    }
}
