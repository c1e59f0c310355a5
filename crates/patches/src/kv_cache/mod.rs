//! KV-cache serialization: a decoder's cache (per layer: key, value, and for
//! encoder-decoders the cross-attention key, value) flattened to the named
//! tensors ONNX graphs take and give (`past_key_values.{i}.key`, ...,
//! `present.{i}.value`) and back, by cache type, through a registry.
//!
//! Generic over the tensor type `T` (candle tensors, ndarray arrays, or the
//! plain [`F32Tensor`]): naming never looks inside a tensor, so this needs
//! neither candle nor ONNX Runtime.

mod layout;
mod registry;
mod tensor;

pub use layout::{CacheIo, CacheLayout};
pub use registry::{global, CacheRegistry};
pub use tensor::F32Tensor;
