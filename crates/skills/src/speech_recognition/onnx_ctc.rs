//! wav2vec2 CTC as an ONNX graph (optimum's `automatic-speech-recognition`
//! export) on ONNX Runtime: fed the same normalised `input_values` as the
//! candle model, it returns the per-frame `logits`; the CTC decode is shared.

use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession};

const INPUT: &str = "input_values";
const LOGITS: &str = "logits";

/// A wav2vec2-style CTC graph on ONNX Runtime.
#[derive(Debug)]
pub(crate) struct OnnxCtc {
    session: OrtSession,
}

impl OnnxCtc {
    /// Checks that the graph takes `input_values` and returns `logits`.
    pub(crate) fn new(session: OrtSession) -> Result<Self, SkillError> {
        let missing = |what: String| {
            SkillError::Backend(BackendError::Unsupported {
                kind: session.kind(),
                why: format!("the ONNX graph has no {what} (not a CTC export)"),
            })
        };
        if session.input(INPUT).is_none() {
            return Err(missing(format!("input '{INPUT}'")));
        }
        if !session.outputs().iter().any(|o| o.name == LOGITS) {
            return Err(missing(format!("output '{LOGITS}'")));
        }
        Ok(Self { session })
    }

    /// Runs one clip of input values; returns the logits `[frames, vocab]`
    /// as a CPU tensor.
    pub(crate) fn forward(&self, values: &[f32]) -> Result<Tensor, SkillError> {
        let input = OrtInput::F32 {
            shape: vec![1, values.len()],
            data: values.to_vec(),
        };
        let outputs = self.session.run(vec![(INPUT.to_owned(), input)])?;
        let (shape, data) = outputs.f32(LOGITS)?;
        match shape.as_slice() {
            [1, frames, vocab] => Ok(Tensor::from_vec(data, (*frames, *vocab), &Device::Cpu)?),
            other => Err(SkillError::Backend(BackendError::Run {
                kind: self.session.kind(),
                detail: format!("'{LOGITS}' has shape {other:?}, expected [1, frames, vocab]"),
            })),
        }
    }
}
