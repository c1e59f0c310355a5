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
    /// `ipfs://<cid>` whose CID does not parse.
    #[error("invalid model reference '{reference}': not a valid CID: {source}")]
    InvalidCid {
        /// What the user passed.
        reference: String,
        /// Why the CID is invalid.
        #[source]
        source: cid::Error,
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
    /// A JSON file of the model could not be read.
    #[error("model '{model}': {file} is malformed: {source}")]
    Unreadable {
        /// The model as given.
        model: String,
        /// The file.
        file: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the model does not parse.
    #[error("model '{model}': {file} is malformed: {source}")]
    MalformedJson {
        /// The model as given.
        model: String,
        /// The file.
        file: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The storage layer failed (I/O, corrupt blob, lock).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why [`Loader::ipfs`](crate::Loader::ipfs) gives no client: the gate
/// forbids IPFS, so no request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpfsUnavailable {
    /// `IPFS_KIT_DISABLE`.
    #[error("disabled by the gate (IPFS_KIT_DISABLE)")]
    Disabled,
    /// `STORAGE_FORCE_LOCAL`.
    #[error("storage is local only (STORAGE_FORCE_LOCAL)")]
    LocalOnly,
}
