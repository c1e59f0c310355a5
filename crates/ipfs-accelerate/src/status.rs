//! What `status` reports: the gate, interception, storage and backends.

use ipfs_accelerate_backends::BackendInfo;
use ipfs_accelerate_gating::Gate;
use ipfs_accelerate_loader::{InterceptionStatus, Loader};
use ipfs_accelerate_storage::{StorageError, StorageMode};
use serde::Serialize;
use std::path::PathBuf;

/// Storage as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct StorageStatus {
    /// `local` or `distributed`.
    pub mode: StorageMode,
    /// Our cache root.
    pub cache_dir: PathBuf,
    /// The IPFS API configured (`IPFS_API_URL` / `IPFS_PATH/api`), if any.
    pub ipfs_api: Option<String>,
    /// The Python Hub cache folder read and written.
    pub hub_cache_dir: PathBuf,
    /// Persisted hit/miss counters per layer.
    pub stats: ipfs_accelerate_storage::Stats,
}

/// The whole `status` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The gate's decisions and reasons.
    pub gate: Gate,
    /// Interception now (applied on first use when the gate allows).
    pub interception: InterceptionStatus,
    /// Storage mode and locations.
    pub storage: StorageStatus,
    /// Every backend and whether it can run here.
    pub backends: Vec<BackendInfo>,
    /// Every model family this build runs (the family table).
    pub families: Vec<ipfs_accelerate_skills::FamilyInfo>,
}

/// Gathers the status of `loader`, applying interception first as any load
/// would, so `applied` says what a load in this process would do.
pub fn status(loader: &Loader) -> Result<Status, StorageError> {
    let gate = loader.gate().clone();
    loader.intercepting();
    Ok(Status {
        interception: ipfs_accelerate_loader::status(&gate),
        storage: StorageStatus {
            mode: ipfs_accelerate_storage::storage_mode(&gate),
            cache_dir: loader.store().root().to_path_buf(),
            ipfs_api: ipfs_accelerate_storage::ipfs_api_url(),
            hub_cache_dir: loader.hub_cache_dir().to_path_buf(),
            stats: loader.store().stats()?,
        },
        backends: ipfs_accelerate_backends::report(),
        families: ipfs_accelerate_skills::families().collect(),
        gate,
    })
}
