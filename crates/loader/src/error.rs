//! Loader errors: each names the model, the file and every place tried.

use ipfs_accelerate_storage::StorageError;

/// Why a model file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `--model` is neither a folder, a Hub id nor an `ipfs://` CID.
    #[error("invalid model reference '{reference}': {reason}")]
    InvalidReference {
        /// What the user passed.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No place had the file.
    #[error("model '{model}': file '{file}' not found; tried: {}", tried.join("; "))]
    NotFound {
        /// The model as given.
        model: String,
        /// The file that was looked for.
        file: String,
        /// One entry per place tried, with what happened there.
        tried: Vec<String>,
    },
    /// A JSON file of the model could not be read or parsed.
    #[error("model '{model}': {file} is malformed: {reason}")]
    Malformed {
        /// The model as given.
        model: String,
        /// The file.
        file: String,
        /// The parse error.
        reason: String,
    },
    /// The storage layer failed (I/O, corrupt blob, lock).
    #[error(transparent)]
    Storage(#[from] StorageError),
}
