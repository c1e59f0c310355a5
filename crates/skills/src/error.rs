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
    /// The tokenizer file is unusable.
    #[error("model '{model}': tokenizer.json is unusable: {reason}")]
    Tokenizer {
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// The weights do not fit the config, are truncated or corrupt.
    #[error("model '{model}': cannot load weights: {reason}")]
    Weights {
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// A media file (audio, image) is unusable.
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
    /// The request itself is wrong (empty input, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Inference failed inside the tensor library.
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}
