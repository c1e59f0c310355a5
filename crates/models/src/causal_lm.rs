//! What the generation loop needs from a decoder-only model.

use candle_core::{Device, Result, Tensor};

/// A causal language model that keeps its own key/value cache.
///
/// One sequence at a time: `forward` continues the cached context, so the
/// first call takes the whole prompt and each later call one token.
pub trait CausalLm: Send + std::fmt::Debug {
    /// Runs `ids` after everything cached so far and returns the logits of
    /// the last position as an f32 tensor of shape `[vocab]`.
    fn forward(&mut self, ids: &[u32]) -> candle_core::Result<Tensor>;

    /// Forgets the cached context.
    fn reset(&mut self);

    /// How many positions the model can attend to; `None` when unbounded.
    fn context_length(&self) -> Option<usize>;
}

/// Position ids `[1, len]` (u32) from `first` on: the input of a learned
/// position embedding after `first` cached positions.
pub(crate) fn position_ids(first: usize, len: usize, device: &Device) -> Result<Tensor> {
    let positions: Vec<u32> = (first..first + len).map(|p| p as u32).collect();
    Tensor::new(positions.as_slice(), device)?.unsqueeze(0)
}
