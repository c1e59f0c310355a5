//! Whisper's network on the backend that loaded it: candle's model, or
//! the three graphs of optimum's seq2seq layout on ONNX Runtime / OpenVINO
//! (the model's own, or exported on first use). The front end, the forced
//! prefix, suppression, timestamp rules and long-form loop are the skill's,
//! shared by both.

use crate::onnx_seq2seq::OnnxSeq2Seq;
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::OrtInput;
use ipfs_accelerate_models::whisper;

/// Whisper's encoder and decoder.
#[derive(Debug)]
pub(super) enum WhisperModel {
    /// candle (CPU or CUDA).
    Candle(Box<whisper::Whisper>),
    /// ONNX Runtime sessions.
    Onnx {
        /// The three sessions and the cache between steps.
        model: Box<OnnxSeq2Seq>,
        /// Decoder positions used since the last reset.
        seen: usize,
        /// `max_target_positions`: the decoder's position table.
        max_positions: usize,
    },
}

impl WhisperModel {
    /// The encoder's hidden states for log-mel `features` `[1, mels,
    /// frames]`.
    pub(super) fn encode(&mut self, features: &Tensor) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle(model) => Ok(model.encode(features)?),
            Self::Onnx { model, seen, .. } => {
                *seen = 0;
                let input = OrtInput::F32 {
                    shape: features.dims().to_vec(),
                    data: features.flatten_all()?.to_vec1::<f32>()?,
                };
                model.encode_inputs(vec![("input_features".to_owned(), input)])?;
                let (shape, data) = model.encoded().ok_or_else(|| {
                    SkillError::InvalidInput("the encoder returned nothing".to_owned())
                })?;
                Ok(Tensor::from_vec(data.to_vec(), shape, &Device::Cpu)?)
            }
        }
    }

    /// Feeds `tokens` after those already decoded since the last reset
    /// (the first call takes the whole prefix with `encoded`); returns the
    /// logits after the last, f32 `[vocab]`.
    pub(super) fn decode(
        &mut self,
        tokens: &[u32],
        encoded: &Tensor,
    ) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle(model) => Ok(model.decode(tokens, encoded)?),
            Self::Onnx {
                model,
                seen,
                max_positions,
            } => {
                if *seen + tokens.len() > *max_positions {
                    return Err(SkillError::InvalidInput(format!(
                        "the decoder holds at most {max_positions} positions"
                    )));
                }
                if model.at_first_step() {
                    // The encoder output the prefix attends to (after a
                    // reset, or a failed step, the runner has forgotten it).
                    *seen = 0;
                    model.set_encoded(
                        encoded.dims().to_vec(),
                        encoded.flatten_all()?.to_vec1::<f32>()?,
                    );
                }
                let logits = model.decode(tokens)?;
                *seen += tokens.len();
                Ok(logits)
            }
        }
    }

    /// Positions the decoder has left.
    pub(super) fn room(&self) -> usize {
        match self {
            Self::Candle(model) => model.room(),
            Self::Onnx {
                seen,
                max_positions,
                ..
            } => max_positions.saturating_sub(*seen),
        }
    }

    /// Forgets what the last request left (on ONNX Runtime, the encoder's
    /// cross-attention cache too): the model is idle.
    pub(super) fn release(&mut self) {
        match self {
            Self::Candle(model) => model.reset(),
            Self::Onnx { model, seen, .. } => {
                model.release_encoder();
                *seen = 0;
            }
        }
    }

    /// Forgets the decoder's cache (the next `decode` starts a prefix).
    pub(super) fn reset(&mut self) {
        match self {
            Self::Candle(model) => model.reset(),
            Self::Onnx { model, seen, .. } => {
                model.reset();
                *seen = 0;
            }
        }
    }
}
