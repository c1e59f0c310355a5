//! Skills: one module per model family, each loading its files only through
//! the loader (so storage and interception apply) and running on the backend
//! chosen by `ipfs-accelerate-backends`.
//!
//! [`registry`] maps a `config.json`'s `model_type`/`architectures` to a skill.

pub mod array;
mod backend_chain;
mod error;
mod graph_or_weights;
pub mod image_to_text;
pub mod media;
mod model_patches;
mod onnx_graph;
pub mod preprocess;
pub mod registry;
pub mod similarity;
pub mod speech_recognition;
pub mod text2text;
pub mod text_embeddings;
pub mod text_generation;
mod weights;

pub use array::Array;
pub use backend_chain::retry_on_cpu_after_oom;
pub use error::SkillError;
pub use image_to_text::{Caption, CaptionOptions, ImageCaptioner};
pub use media::MediaError;
pub use registry::{skill_for_config, SkillKind};
pub use similarity::{Media, Similarity, SimilarityModel, SimilarityOptions};
pub use speech_recognition::{SpeechRecognizer, TranscribeOptions, Transcription};
pub use text2text::Text2TextGenerator;
pub use text_embeddings::{EmbedOptions, Pooling, TextEmbedder};
pub use text_generation::{GenerateOptions, Generation, SamplingParams, StopReason, TextGenerator};
