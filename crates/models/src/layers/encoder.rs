//! The transformer encoder layer: self-attention, then the MLP, each added
//! back to its input and layer-normed.

use super::attention::MultiHeadAttention;
use super::mlp::Mlp;
use candle_core::{Result, Tensor};
use candle_nn::{LayerNorm, Module};

/// One encoder layer, pre-LN (`norm_first`: CLIP, stable-layer-norm
/// wav2vec2) or post-LN (BERT, base wav2vec2). Each family loads the parts
/// under its own names.
#[derive(Debug)]
pub struct EncoderLayer {
    attention: MultiHeadAttention,
    attention_norm: LayerNorm,
    mlp: Mlp,
    mlp_norm: LayerNorm,
    norm_first: bool,
}

impl EncoderLayer {
    /// From its parts; `norm_first` normalises each block's input instead
    /// of its output.
    pub fn new(
        attention: MultiHeadAttention,
        attention_norm: LayerNorm,
        mlp: Mlp,
        mlp_norm: LayerNorm,
        norm_first: bool,
    ) -> Self {
        Self {
            attention,
            attention_norm,
            mlp,
            mlp_norm,
            norm_first,
        }
    }

    /// Self-attention with its residual and norm.
    pub fn attention_block(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        if self.norm_first {
            let h = self.attention_norm.forward(x)?;
            x + self.attention.forward(&h, &h, mask)?
        } else {
            self.attention_norm
                .forward(&(x + self.attention.forward(x, x, mask)?)?)
        }
    }

    /// The MLP with its residual and norm.
    pub fn mlp_block(&self, x: &Tensor) -> Result<Tensor> {
        if self.norm_first {
            x + self.mlp.forward(&self.mlp_norm.forward(x)?)?
        } else {
            self.mlp_norm.forward(&(x + self.mlp.forward(x)?)?)
        }
    }

    /// Both blocks; `mask` is added to the attention scores.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.mlp_block(&self.attention_block(x, mask)?)
    }
}
