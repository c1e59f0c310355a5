//! Skills: the task pipelines (tokenize, run, decode, answer), one module
//! per task, each loading its files only through the loader (so storage and
//! interception apply, [`load`]) and running on the backend chosen by
//! `ipfs-accelerate-backends`. The networks live in `ipfs-accelerate-models`,
//! media decoding and preprocessing in `ipfs-accelerate-media`.
//!
//! [`families`] lists every model family and the task that runs it; the
//! [`registry`] maps a `config.json` to its family through that list.

pub mod array;
mod error;
pub mod families;
pub mod image_to_text;
pub mod load;
mod onnx_seq2seq;
pub mod registry;
pub mod similarity;
pub mod speech_recognition;
pub mod text2text;
pub mod text_embeddings;
pub mod text_generation;

pub use array::Array;
pub use error::SkillError;
pub use families::{families, FamilyInfo};
pub use image_to_text::{Caption, CaptionOptions, ImageCaptioner};
pub use ipfs_accelerate_media::{self as media, preprocess, MediaError};
pub use load::backend_chain::retry_on_cpu_after_oom;
pub use load::contained::containing_panic;
pub use load::Loaded;
pub use registry::{skill_for_config, SkillKind};
pub use similarity::{EmbedItem, Media, Similarity, SimilarityModel, SimilarityOptions};
pub use speech_recognition::{
    subtitles, SpeechRecognizer, TimedSegment, TimedWord, TranscribeOptions, Transcription,
};
pub use text2text::Text2TextGenerator;
pub use text_embeddings::{EmbedOptions, Pooling, TextEmbedder};
pub use text_generation::{
    Cancellation, GenerateOptions, Generation, SamplingParams, StopReason, TextGenerator,
};
