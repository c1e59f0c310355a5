//! BERT-family encoders (all-MiniLM-L6-v2 and the like): candle-transformers'
//! BERT, which matches transformers' `BertModel`, behind a type of ours so
//! every family is found in this crate with the same shape of API.

use crate::ModelError;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
pub use candle_transformers::models::bert::Config as BertConfig;

/// `config.json`'s `model_type` for BERT-family encoders.
pub const MODEL_TYPE: &str = "bert";

/// A BERT encoder.
pub struct Bert {
    model: BertModel,
    hidden_size: usize,
}

impl Bert {
    /// Builds the encoder from its weights.
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self, ModelError> {
        Ok(Self {
            model: BertModel::load(vb, config)?,
            hidden_size: config.hidden_size,
        })
    }

    /// The last hidden states `[batch, seq, hidden]` of `ids` with their
    /// token types and attention mask.
    pub fn forward(
        &self,
        ids: &Tensor,
        token_types: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        self.model.forward(ids, token_types, mask)
    }
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // candle-transformers' `BertModel` has no `Debug`.
        f.debug_struct("Bert")
            .field("hidden_size", &self.hidden_size)
            .finish_non_exhaustive()
    }
}

/// BERT's sizes (candle's config type, checked here).
impl crate::CheckConfig for BertConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        use crate::config_check::*;
        Stack {
            prefix: "",
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            intermediate_size: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
        }
        .check_text(self.vocab_size, self.max_position_embeddings)?;
        count("type_vocab_size", self.type_vocab_size)
    }
}
