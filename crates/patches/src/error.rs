//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong while parsing gates, applying, undoing or dumping patches.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// A version text that is not `N[.N...]` with an optional suffix.
    #[error("invalid version '{text}': {reason}")]
    Version { text: String, reason: String },
    /// A gate text such as `transformers < 4.31` that does not parse.
    #[error("invalid version gate '{text}': {reason}")]
    Gate { text: String, reason: String },
    /// An edit a patch asked for cannot be made on this target.
    #[error("patch {patch}: {reason}")]
    Edit { patch: String, reason: String },
    /// A file patch's target is not the file it was written for.
    #[error("file patch {patch}: {path}: {reason}")]
    Target {
        patch: String,
        path: PathBuf,
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// KV-cache tensors that do not form a cache of the registered type.
    #[error("kv cache '{cache}': {reason}")]
    Cache { cache: String, reason: String },
}

impl PatchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
