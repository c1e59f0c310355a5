//! CLIP as one ONNX graph (optimum's `zero-shot-image-classification`
//! export) on ONNX Runtime: fed the padded text batch, its attention mask and
//! the same `pixel_values` as the candle model, it returns
//! `logits_per_image` and the normalised `text_embeds` / `image_embeds`.
//! X-CLIP's graph (our export) has the same shape with a video:
//! `pixel_values` `[videos, frames, c, h, w]`, `logits_per_video`,
//! `video_embeds`, and `text_embeds` per video `[videos, texts, dim]`.

use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtOutputs, OrtSession};

const IDS: &str = "input_ids";
const MASK: &str = "attention_mask";
const PIXELS: &str = "pixel_values";
const TEXT_EMBEDS: &str = "text_embeds";

/// What a dual-encoder graph compares texts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    /// CLIP: one image `[1, c, h, w]`.
    Image,
    /// X-CLIP: one video `[1, frames, c, h, w]`.
    Video,
}

impl MediaKind {
    fn logits(self) -> &'static str {
        match self {
            Self::Image => "logits_per_image",
            Self::Video => "logits_per_video",
        }
    }

    fn embeds(self) -> &'static str {
        match self {
            Self::Image => "image_embeds",
            Self::Video => "video_embeds",
        }
    }

    fn family(self) -> &'static str {
        match self {
            Self::Image => "CLIP",
            Self::Video => "X-CLIP",
        }
    }
}

/// A CLIP (or X-CLIP) graph on ONNX Runtime.
#[derive(Debug)]
pub(crate) struct OnnxClip {
    session: OrtSession,
    /// Whether the graph takes `attention_mask`.
    mask: bool,
    media: MediaKind,
}

/// What one run returns, as CPU tensors.
pub(crate) struct ClipOutputs {
    /// One logit per text `[texts]`.
    pub logits: Tensor,
    /// `[texts, dim]` (X-CLIP: `[1, texts, dim]`).
    pub text_embeds: Tensor,
    /// `[1, dim]`.
    pub media_embeds: Tensor,
}

/// A padded text batch: ids and mask `[rows, seq]`, row-major.
pub(crate) struct TextBatch {
    pub rows: usize,
    pub seq: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
}

impl OnnxClip {
    /// Checks that the graph has the inputs and outputs of `media`'s
    /// family.
    pub(crate) fn new(session: OrtSession, media: MediaKind) -> Result<Self, SkillError> {
        require_io(
            &session,
            (
                &[IDS, PIXELS],
                &[media.logits(), TEXT_EMBEDS, media.embeds()],
            ),
            &format!("a {} export", media.family()),
        )?;
        let mask = session.input(MASK).is_some();
        Ok(Self {
            session,
            mask,
            media,
        })
    }

    /// Scores the texts of `batch` against one image (`pixel_shape` `[1, 3,
    /// h, w]`) or video (`[1, frames, 3, h, w]`).
    pub(crate) fn forward(
        &self,
        batch: TextBatch,
        pixels: Vec<f32>,
        pixel_shape: Vec<usize>,
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
                    shape: pixel_shape,
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
        let tensor =
            |name: &str, want: &[usize]| output_tensor(&self.session, &outputs, name, want);
        let text_shape: &[usize] = match self.media {
            MediaKind::Image => &[rows, 0],
            MediaKind::Video => &[1, rows, 0],
        };
        Ok(ClipOutputs {
            logits: tensor(self.media.logits(), &[1, rows])?.squeeze(0)?,
            text_embeds: tensor(TEXT_EMBEDS, text_shape)?,
            media_embeds: tensor(self.media.embeds(), &[1, 0])?,
        })
    }
}

/// Checks that `session`'s graph has these `(inputs, outputs)`; the error
/// says what it is not (`expected`, e.g. "a CLIP export").
pub(crate) fn require_io(
    session: &OrtSession,
    (inputs, outputs): (&[&str], &[&str]),
    expected: &str,
) -> Result<(), SkillError> {
    let missing = |what: String| {
        SkillError::Backend(BackendError::Unsupported {
            kind: session.kind(),
            why: format!("the ONNX graph has no {what} (not {expected})"),
        })
    };
    for input in inputs {
        if session.input(input).is_none() {
            return Err(missing(format!("input '{input}'")));
        }
    }
    for output in outputs {
        if !session.outputs().iter().any(|o| o.name == *output) {
            return Err(missing(format!("output '{output}'")));
        }
    }
    Ok(())
}

/// Output `name` of a run of `session` as a CPU tensor, when its shape is
/// `want` (0: any size on that axis); otherwise the error says both.
pub(crate) fn output_tensor(
    session: &OrtSession,
    outputs: &OrtOutputs,
    name: &str,
    want: &[usize],
) -> Result<Tensor, SkillError> {
    let (shape, data) = outputs.f32(name)?;
    let fits = shape.len() == want.len() && shape.iter().zip(want).all(|(&s, &w)| w == 0 || s == w);
    if !fits {
        return Err(SkillError::Backend(BackendError::Run {
            kind: session.kind(),
            detail: format!("'{name}' has shape {shape:?}, expected {want:?} (0: any)"),
        }));
    }
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}
