//! The one error type of this crate.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the storage layer. Messages name the
/// file, path or CID involved so a user can act on them.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No blob with this sha256 is in the store.
    #[error("blob {sha256} is not in the cache (expected at {path})")]
    MissingBlob {
        /// The requested sha256 (hex).
        sha256: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A blob's content does not hash to its name; it has been moved aside.
    #[error("blob {path} is corrupt: expected sha256 {expected}, found {actual}")]
    Corrupt {
        /// Where the corrupt blob now lies (under `corrupt/`).
        path: PathBuf,
        /// The sha256 the blob is named by.
        expected: String,
        /// The sha256 of its actual content.
        actual: String,
    },
    /// A string is not a lowercase hex sha256.
    #[error("invalid sha256 {0:?}: expected 64 lowercase hex digits")]
    InvalidHash(String),
    /// A manifest file could not be parsed.
    #[error("malformed manifest {path}: {source}")]
    MalformedManifest {
        /// The manifest file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document could not be written or read (other than a manifest).
    #[error("JSON error on {path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A CID string could not be parsed or built.
    #[error("invalid CID {cid:?}: {reason}")]
    InvalidCid {
        /// The CID text (or a description of what was being built).
        cid: String,
        /// Why it is invalid.
        reason: String,
    },
    /// CID text that does not parse, or a CID that cannot be built.
    #[error("invalid CID {cid:?}: {source}")]
    Cid {
        /// The CID text (or a description of what was being built).
        cid: String,
        /// Why it is invalid.
        #[source]
        source: cid::Error,
    },
    /// Content fetched from elsewhere does not hash to what was asked for;
    /// it was not stored.
    #[error("content from {source_name} rejected: expected {expected}, got {actual}")]
    ContentMismatch {
        /// Where the bytes came from (e.g. `ipfs cat <cid>`).
        source_name: String,
        /// What they had to hash to.
        expected: String,
        /// What they hash to.
        actual: String,
    },
    /// The IPFS node could not be reached, failed, timed out or answered
    /// something unusable.
    #[error("IPFS node {api}: {op} failed: {reason}")]
    Ipfs {
        /// The API base URL.
        api: String,
        /// The RPC call (e.g. `cat QmX...`).
        op: String,
        /// What went wrong.
        reason: String,
    },
    /// The IPFS node could not be reached, or the request failed on the way.
    #[error("IPFS node {api}: {op} failed: {source}")]
    IpfsHttp {
        /// The API base URL.
        api: String,
        /// The RPC call (e.g. `cat QmX...`).
        op: String,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// Reading the IPFS node's answer failed (e.g. a dropped connection).
    #[error("IPFS node {api}: {op} failed: {source}")]
    IpfsIo {
        /// The API base URL.
        api: String,
        /// The RPC call (e.g. `cat QmX...`).
        op: String,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The IPFS node answered something that is not the JSON expected.
    #[error(
        "IPFS node {api}: {op} failed: unexpected answer{}: {source}",
        answer.as_ref().map(|a| format!(" {a:?}")).unwrap_or_default()
    )]
    IpfsAnswer {
        /// The API base URL.
        api: String,
        /// The RPC call.
        op: String,
        /// The line that did not parse, where it is short enough to show.
        answer: Option<String>,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The gate forbids IPFS (`IPFS_KIT_DISABLE`, `STORAGE_FORCE_LOCAL`).
    #[error("IPFS is disabled: {0}")]
    IpfsDisabled(String),
    /// A relative path inside a model or directory is unusable.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it is rejected.
        reason: String,
    },
}

/// Convenience alias for this crate's results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attach the path an `io::Error` happened on.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
