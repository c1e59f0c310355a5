//! CLIP as one ONNX graph (optimum's `zero-shot-image-classification`
//! export) on ONNX Runtime: fed the padded text batch, its attention mask and
//! the same `pixel_values` as the candle model, it returns
//! `logits_per_image` and the normalised `text_embeds` / `image_embeds`.

use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession};

const IDS: &str = "input_ids";
const MASK: &str = "attention_mask";
const PIXELS: &str = "pixel_values";
const LOGITS: &str = "logits_per_image";
const TEXT_EMBEDS: &str = "text_embeds";
const IMAGE_EMBEDS: &str = "image_embeds";

/// A CLIP graph on ONNX Runtime.
#[derive(Debug)]
pub(crate) struct OnnxClip {
    session: OrtSession,
    /// Whether the graph takes `attention_mask`.
    mask: bool,
}

/// What one run returns, as CPU tensors.
pub(crate) struct ClipOutputs {
    /// One logit per text `[texts]`.
    pub logits: Tensor,
    /// `[texts, dim]`.
    pub text_embeds: Tensor,
    /// `[1, dim]`.
    pub image_embeds: Tensor,
}

/// A padded text batch: ids and mask `[rows, seq]`, row-major.
pub(crate) struct TextBatch {
    pub rows: usize,
    pub seq: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
}

impl OnnxClip {
    /// Checks that the graph has CLIP's inputs and outputs.
    pub(crate) fn new(session: OrtSession) -> Result<Self, SkillError> {
        let missing = |what: String| {
            SkillError::Backend(BackendError::Unsupported {
                kind: session.kind(),
                why: format!("the ONNX graph has no {what} (not a CLIP export)"),
            })
        };
        for input in [IDS, PIXELS] {
            if session.input(input).is_none() {
                return Err(missing(format!("input '{input}'")));
            }
        }
        for output in [LOGITS, TEXT_EMBEDS, IMAGE_EMBEDS] {
            if !session.outputs().iter().any(|o| o.name == output) {
                return Err(missing(format!("output '{output}'")));
            }
        }
        let mask = session.input(MASK).is_some();
        Ok(Self { session, mask })
    }

    /// Scores the texts of `batch` against one image `[1, 3, h, w]`.
    pub(crate) fn forward(
        &self,
        batch: TextBatch,
        pixels: Vec<f32>,
        (h, w): (usize, usize),
    ) -> Result<ClipOutputs, SkillError> {
        let TextBatch {
            rows,
            seq,
            ids,
            mask,
        } = batch;
        let mut inputs = vec![
            (
                IDS.to_owned(),
                OrtInput::I64 {
                    shape: vec![rows, seq],
                    data: ids,
                },
            ),
            (
                PIXELS.to_owned(),
                OrtInput::F32 {
                    shape: vec![1, 3, h, w],
                    data: pixels,
                },
            ),
        ];
        if self.mask {
            inputs.push((
                MASK.to_owned(),
                OrtInput::I64 {
                    shape: vec![rows, seq],
                    data: mask,
                },
            ));
        }
        let outputs = self.session.run(inputs)?;
        let tensor = |name: &str, want: &[usize]| -> Result<Tensor, SkillError> {
            let (shape, data) = outputs.f32(name)?;
            let fits = shape.len() == want.len()
                && shape.iter().zip(want).all(|(&s, &w)| w == 0 || s == w);
            if !fits {
                return Err(SkillError::Backend(BackendError::Run {
                    kind: self.session.kind(),
                    detail: format!("'{name}' has shape {shape:?}, expected {want:?} (0: any)"),
                }));
            }
            Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
        };
        Ok(ClipOutputs {
            logits: tensor(LOGITS, &[1, rows])?.squeeze(0)?,
            text_embeds: tensor(TEXT_EMBEDS, &[rows, 0])?,
            image_embeds: tensor(IMAGE_EMBEDS, &[1, 0])?,
        })
    }
}
