//! RoPE inverse frequencies for the `rope_scaling` types whose frequencies
//! do not change with the sequence length (`default`, `linear`, `llama3`),
//! computed by the models crate's rotary embedding, the one candle runs
//! (in f32, as `transformers`' `modeling_rope_utils.py` does). The graph
//! multiplies them by `position_ids`, so any position works. `dynamic` and
//! `longrope` switch frequencies at run time and `yarn` is not written yet:
//! they are refused by name.

use ipfs_accelerate_models::layers::rope::{RopeBase, RopeScaling, RotaryEmbedding};
use ipfs_accelerate_models::llama::LlamaConfig;

/// Why a config's RoPE cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum RopeExportError {
    /// `rope_scaling` does not parse, or the rotary embedding refuses the
    /// config (an odd rotary dimension, ...).
    #[error(transparent)]
    Config(#[from] ipfs_accelerate_models::ModelError),
    /// A scaling whose frequencies change at run time, or not written yet.
    #[error("rope_scaling type '{0}' is not exported (supported: default, linear, llama3)")]
    Unexported(&'static str),
}

/// The inverse frequencies `[dim / 2]` for `cfg.rope_scaling`, or why they
/// cannot be exported.
pub fn inv_freq(cfg: &LlamaConfig, dim: usize) -> Result<Vec<f32>, RopeExportError> {
    let scaling = RopeScaling::from_config(cfg.rope_scaling.as_ref())?;
    let exported = matches!(
        scaling,
        RopeScaling::Default | RopeScaling::Linear { .. } | RopeScaling::Llama3 { .. }
    );
    if !exported {
        return Err(RopeExportError::Unexported(scaling.name()));
    }
    let base = RopeBase {
        theta: cfg.rope_theta,
        dim,
        max_position_embeddings: cfg.max_position_embeddings,
        original_max_position_embeddings: cfg.original_max_position_embeddings,
    };
    let rope = RotaryEmbedding::new(base, scaling)?;
    Ok(rope.inv_freq().to_vec())
}
