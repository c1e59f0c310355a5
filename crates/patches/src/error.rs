//! The crate's error type.

use crate::file::UnexpectedContent;
use crate::{KeyError, UndoError};
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
    /// A patch set a key its target cannot hold.
    #[error("patch {patch}: {source}")]
    Key {
        patch: String,
        #[source]
        source: KeyError,
    },
    /// Undoing a patch's edits failed: the target changed in between.
    #[error("patch {patch}: undo failed: {source}")]
    Undo {
        patch: String,
        #[source]
        source: UndoError,
    },
    /// A file patch's target is not the file it was written for.
    #[error("file patch {patch}: {path}: {reason}")]
    Target {
        patch: String,
        path: PathBuf,
        reason: String,
    },
    /// A patch's target file could not be read (`what` says which part).
    #[error("file patch {patch}: {path}: {what}: {source}")]
    TargetIo {
        patch: String,
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A patch's target file holds JSON that does not parse.
    #[error("file patch {patch}: {path}: {what}: {source}")]
    TargetJson {
        patch: String,
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A file patch's target holds neither the original nor the patched text
    /// exactly once.
    #[error("file patch {patch}: {path}: {source}")]
    TargetContent {
        patch: String,
        path: PathBuf,
        #[source]
        source: UnexpectedContent,
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
