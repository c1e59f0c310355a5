//! Content-addressed local model cache, shared over IPFS.
//!
//! Every model file lands in a [`Store`] named by its sha256, with the
//! CID `ipfs add` would give it computed on the way in ([`unixfs`]), so the
//! same bytes can be served to and fetched from IPFS peers.
//!
//! ```
//! use ipfs_accelerate_storage::{file_cid, CidVersion};
//!
//! // What `ipfs add` answers for "hello world\n".
//! let node = file_cid(&b"hello world\n"[..], CidVersion::V0)?;
//! assert_eq!(node.cid.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
//! # Ok::<(), ipfs_accelerate_storage::StorageError>(())
//! ```

mod blob_store;
mod distributed;
mod error;
mod fsutil;
pub mod ipfs;
mod lock;
mod manifest;
mod paths;
mod retention;
mod stats;
pub mod unixfs;
mod verify;

pub use blob_store::{sha256_of_file, BlobInfo, Expected, Store};
pub use distributed::{
    ipfs_api_url, ipfs_api_url_from, is_distributed, multiaddr_to_url, storage_mode, StorageMode,
    DEFAULT_IPFS_API,
};
pub use error::{Result, StorageError};
pub use ipfs::IpfsClient;
pub use lock::LockGuard;
pub use manifest::{Manifest, ManifestFile, ManifestScan, UnreadableFile};
pub use paths::{cache_dir, cache_dir_from, CACHE_ENV};
pub use retention::GcReport;
pub use stats::{Layer, LayerStats, Stats};
pub use unixfs::{directory_cid, file_cid, path_cid, same_cid, CidVersion, DagNode, FileBuilder};
pub use verify::VerifyReport;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn cache_dir_table() {
        let home = Path::new("/home/u");
        let cases = [
            (Some("/data/c"), Some(home), PathBuf::from("/data/c")),
            (Some(""), Some(home), home.join(".cache/ipfs_accelerate")),
            (None, Some(home), home.join(".cache/ipfs_accelerate")),
            (Some("rel"), None, PathBuf::from("rel")),
            (None, None, std::env::temp_dir().join("ipfs_accelerate")),
        ];
        for (env, home, want) in cases {
            assert_eq!(cache_dir_from(env, home), want, "{env:?} {home:?}");
        }
    }
}
