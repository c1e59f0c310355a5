//! The IPFS layer: a Kubo RPC (`/api/v0`) client and model snapshots as
//! UnixFS directories (publish, pull, fetch one file), and a name -> CID
//! index in the node's MFS.
//!
//! The client speaks HTTP through `ureq` (already a workspace dependency)
//! rather than `ipfs-api-backend-hyper`: that crate's last release (2022)
//! needs the yanked `core2` and hyper 0.14, and the handful of calls used
//! here (`version`, `add`, `cat`, `ls`, `pin/*`) are simple enough to own.
//! Owning them also lets every call carry both a client-side read timeout
//! and the node-side `timeout=` argument that js-ipfs needs to stop waiting
//! for a block it does not have.

mod client;
mod multipart;
pub mod name_index;
mod snapshot;

pub use client::{AddedEntry, IpfsClient, LsLink, DEFAULT_TIMEOUT, TIMEOUT_ENV};
pub use snapshot::{fetch_cid, fetch_file, publish, pull, write_through};
