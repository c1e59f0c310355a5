//! Checkpoint rewrites: tensor names as older transformers versions (or
//! other model classes) saved them, renamed to what the loaders expect, on
//! the tensor map as loaded from safetensors.

mod base_model_prefix;
mod header;
mod layer_norm_gamma_beta;
mod rotary_inv_freq;

pub use base_model_prefix::{BaseModelPrefix, PrefixDirection};
pub use header::read_shapes;
pub use layer_norm_gamma_beta::LayerNormGammaBeta;
pub use rotary_inv_freq::RotaryInvFreq;

use crate::{Patch, TensorLike};
use std::collections::HashMap;

/// What checkpoint patches name as their target.
pub const TARGET: &str = "checkpoint tensors (*.safetensors)";

/// A checkpoint as loaded: tensor name -> tensor.
pub type Tensors<T> = HashMap<String, T>;

/// The built-in checkpoint patches, in the order they apply.
pub fn builtin<T: TensorLike + 'static>() -> Vec<Box<dyn Patch<Tensors<T>>>> {
    vec![
        Box::new(LayerNormGammaBeta::new()),
        Box::new(BaseModelPrefix::bert()),
        Box::new(BaseModelPrefix::llama()),
        Box::new(RotaryInvFreq::new()),
    ]
}
