//! The networks, one file per model family as candle-transformers lays
//! them out, with their `config.json` types and the layers they share
//! ([`layers`]: attention with a KV cache, activations, rotary embeddings).
//!
//! A network here knows tensors and configs only: reading files, patches,
//! tokenizers and the fallback between backends are the skills' business
//! (`ipfs-accelerate-skills`), so the ONNX exporter and the skills build
//! from the same config types.

mod causal_lm;
pub mod config_check;
mod error;
pub mod layers;

pub mod bert;
pub mod clap;
pub mod clip;
pub mod gpt2;
pub mod llama;
pub mod llava;
pub mod opt;
pub mod pooling;
pub mod quantized_llama;
pub mod t5;
pub mod wav2vec2;
pub mod whisper;
pub mod xclip;

pub use causal_lm::CausalLm;
pub use config_check::CheckConfig;
pub use error::{parse_config, ModelError};
