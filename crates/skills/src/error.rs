//! Skill errors.

use ipfs_accelerate_backends::BackendError;
use ipfs_accelerate_loader::LoadError;

/// Why a skill could not load or run.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// A file could not be found or read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// No usable backend.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// `config.json` names an architecture no skill handles.
    #[error("model '{model}': unsupported architecture {found}; supported: {}", supported.join(", "))]
    Unsupported {
        /// The model.
        model: String,
        /// What its config says.
        found: String,
        /// What this build supports.
        supported: Vec<&'static str>,
    },
    /// The tokenizer file is unusable, or cannot encode or decode.
    #[error("model '{model}': tokenizer.json is unusable: {source}")]
    Tokenizer {
        /// The model.
        model: String,
        /// Why (the tokenizers library's error, or ours).
        #[source]
        source: tokenizers::Error,
    },
    /// The model has no ONNX graph and exporting one on first use failed.
    #[error("model '{model}': it has no ONNX graph, and exporting one failed: {source}")]
    Export {
        /// The model.
        model: String,
        /// The exporter's error.
        #[source]
        source: ipfs_accelerate_export::OnnxError,
    },
    /// The weights do not fit the config, are truncated or corrupt.
    #[error("model '{model}': cannot load weights: {source}")]
    Weights {
        /// The model.
        model: String,
        /// Why: the network's [`ipfs_accelerate_models::ModelError`], a
        /// safetensors file's error or a checkpoint patch's.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A media file (audio, image) is unusable.
    #[error(transparent)]
    Media(#[from] ipfs_accelerate_media::MediaError),
    /// Media that cannot be turned into model input (empty, too long).
    #[error("invalid input: {0}")]
    Preprocess(#[from] ipfs_accelerate_media::PreprocessError),
    /// The request itself is wrong (empty input, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Inference failed inside the tensor library.
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}
