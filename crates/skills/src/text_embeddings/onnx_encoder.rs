//! The encoder as an ONNX graph (optimum's `feature-extraction` export) on
//! ONNX Runtime: fed the same ids, token types and mask as the candle BERT,
//! it returns `last_hidden_state`, which the shared pooling turns into
//! sentence vectors.

use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession};

const HIDDEN: &str = "last_hidden_state";

/// A BERT-family encoder graph on ONNX Runtime.
#[derive(Debug)]
pub(crate) struct OnnxEncoder {
    session: OrtSession,
    /// Whether the graph takes `token_type_ids` (DistilBERT-style exports
    /// do not).
    token_types: bool,
}

impl OnnxEncoder {
    /// Checks that the graph has the encoder's inputs and output.
    pub(crate) fn new(session: OrtSession) -> Result<Self, SkillError> {
        let missing = |what: &str| {
            SkillError::Backend(BackendError::Unsupported {
                kind: session.kind(),
                why: format!("the ONNX graph has no {what} (not an encoder export)"),
            })
        };
        for input in ["input_ids", "attention_mask"] {
            if session.input(input).is_none() {
                return Err(missing(&format!("input '{input}'")));
            }
        }
        if !session.outputs().iter().any(|o| o.name == HIDDEN) {
            return Err(missing(&format!("output '{HIDDEN}'")));
        }
        let token_types = session.input("token_type_ids").is_some();
        Ok(Self {
            session,
            token_types,
        })
    }

    /// Runs `[rows, seq]` ids, token types and mask; returns the hidden
    /// states `[rows, seq, dim]` as a CPU tensor.
    pub(crate) fn forward(
        &self,
        (rows, seq): (usize, usize),
        ids: &[u32],
        types: &[u32],
        mask: &[u32],
    ) -> Result<Tensor, SkillError> {
        let int64 = |values: &[u32]| OrtInput::I64 {
            shape: vec![rows, seq],
            data: values.iter().map(|&v| i64::from(v)).collect(),
        };
        let mut inputs = vec![
            ("input_ids".to_owned(), int64(ids)),
            ("attention_mask".to_owned(), int64(mask)),
        ];
        if self.token_types {
            inputs.push(("token_type_ids".to_owned(), int64(types)));
        }
        let outputs = self.session.run(inputs)?;
        let (shape, data) = outputs.f32(HIDDEN)?;
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }
}
