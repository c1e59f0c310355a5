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

/// ONNX export on first use as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct OnnxExportStatus {
    /// Whether ONNX backends export a model that ships no graph (off with
    /// `--no-export` / `IPFS_ACCELERATE_NO_EXPORT`).
    pub enabled: bool,
    /// The exporters' version (part of every export's key).
    pub exporter_version: u32,
    /// The `model_type`s with an exporter.
    pub exportable: Vec<&'static str>,
    /// The exports in our cache, with what they were made from.
    pub cached: Vec<CachedExportInfo>,
}

/// One export in our cache (`onnx-export@<key>`).
#[derive(Debug, Clone, Serialize)]
pub struct CachedExportInfo {
    /// The key (the snapshot's revision).
    pub key: String,
    /// Its UnixFS root CID.
    pub root_cid: String,
    /// The provenance (`export.json`); `None` when unreadable.
    pub provenance: Option<ipfs_accelerate_export::Provenance>,
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
    /// ONNX export on first use, and the exports cached.
    pub onnx_export: OnnxExportStatus,
}

/// Gathers the status of `loader`, applying interception first as any load
/// would, so `applied` says what a load in this process would do.
pub fn status(loader: &Loader) -> Result<Status, StorageError> {
    let gate = loader.gate().clone();
    loader.intercepting();
    let store = loader.store();
    let cached = store
        .manifests()?
        .into_iter()
        .filter(|m| m.id == ipfs_accelerate_export::EXPORT_MANIFEST_ID)
        .map(|m| CachedExportInfo {
            provenance: ipfs_accelerate_export::provenance(store, &m),
            key: m.revision,
            root_cid: m.root_cid,
        })
        .collect();
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
        onnx_export: OnnxExportStatus {
            enabled: loader.export_enabled(),
            exporter_version: ipfs_accelerate_export::EXPORTER_VERSION,
            exportable: ipfs_accelerate_export::EXPORTABLE.to_vec(),
            cached,
        },
        gate,
    })
}
