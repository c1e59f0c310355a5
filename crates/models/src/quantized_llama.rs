//! candle-transformers' quantized LLaMA behind [`CausalLm`].

use crate::CausalLm;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};

/// A quantized LLaMA read from GGUF, with the position of its KV cache.
pub struct GgufLlama {
    weights: ModelWeights,
    device: Device,
    // Tokens already in the KV cache: `ModelWeights::forward` takes the
    // position of the first new token and does not track it itself.
    position: usize,
    context_length: usize,
}

impl GgufLlama {
    /// Wraps loaded weights. `metadata_context` is `{arch}.context_length`;
    /// candle precomputes RoPE for [`MAX_SEQ_LEN`] positions only, so the
    /// usable context is the smaller of the two.
    pub fn new(weights: ModelWeights, device: Device, metadata_context: Option<usize>) -> Self {
        let context_length = metadata_context.map_or(MAX_SEQ_LEN, |c| c.min(MAX_SEQ_LEN));
        Self {
            weights,
            device,
            position: 0,
            context_length,
        }
    }
}

impl CausalLm for GgufLlama {
    fn forward(&mut self, ids: &[u32]) -> candle_core::Result<Tensor> {
        if self.position + ids.len() > self.context_length {
            candle_core::bail!(
                "{} tokens after {} exceed the context of {} positions",
                ids.len(),
                self.position,
                self.context_length
            );
        }
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let logits = self.weights.forward(&input, self.position)?;
        self.position += ids.len();
        logits.squeeze(0)?.to_dtype(DType::F32)
    }

    fn reset(&mut self) {
        // `forward` at position 0 would also replace the cache; clearing it
        // here frees the memory between generations.
        self.weights.clear_kv_cache();
        self.position = 0;
    }

    fn context_length(&self) -> Option<usize> {
        Some(self.context_length)
    }
}

impl std::fmt::Debug for GgufLlama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // candle's `ModelWeights` has no `Debug`.
        f.debug_struct("GgufLlama")
            .field("position", &self.position)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}
