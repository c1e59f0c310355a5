//! Content-addressed local model cache, shared over IPFS.

mod error;
mod paths;
pub mod unixfs;

pub use error::{Result, StorageError};
pub use paths::{cache_dir, cache_dir_from, CACHE_ENV};
pub use unixfs::{directory_cid, file_cid, path_cid, CidVersion, DagNode, FileBuilder};
