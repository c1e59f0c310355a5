//! `Loader`: resolves model files layer by layer.

use crate::file_kind::FileKind;
use crate::hub::HubSettings;
use crate::interception;
use crate::model_ref::ModelRef;
use crate::{hub_cache, IpfsUnavailable, LoadError};
use ipfs_accelerate_gating::Gate;
use ipfs_accelerate_storage::{ipfs, IpfsClient, Layer, Manifest, StorageError, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A model file found somewhere, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFile {
    /// The file's name inside the model (`config.json`, `1_Pooling/config.json`).
    pub file: String,
    /// Where it can be read now.
    pub path: PathBuf,
    /// The layer that served it.
    pub source: Layer,
}

/// Builds a [`Loader`]; anything not set comes from the environment.
#[derive(Debug, Default)]
pub struct LoaderBuilder {
    cache_dir: Option<PathBuf>,
    hub_cache_dir: Option<PathBuf>,
    hub: Option<HubSettings>,
    gate: Option<Gate>,
    ipfs_api: Option<String>,
    patches: Option<bool>,
    export: Option<bool>,
    dump_rewriting: Option<PathBuf>,
}

impl LoaderBuilder {
    /// The IPFS node's API URL (default: `IPFS_API_URL`, `$IPFS_PATH/api`,
    /// `http://127.0.0.1:5001`). Only used when the gate allows IPFS.
    pub fn ipfs_api(mut self, url: impl Into<String>) -> Self {
        self.ipfs_api = Some(url.into());
        self
    }

    /// Our cache root. An explicit value always wins over `IPFS_ACCELERATE_CACHE`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The Python Hub cache folder (the `hub/` folder itself).
    pub fn hub_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hub_cache_dir = Some(dir.into());
        self
    }

    /// How to reach the Hub.
    pub fn hub(mut self, hub: HubSettings) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The gate's decisions (default: [`Gate::from_env`]).
    pub fn gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Whether skills apply checkpoint / config patches (default: the
    /// gate's `patches`, off under `TRANSFORMERS_PATCH_DISABLE`).
    pub fn patches(mut self, enabled: bool) -> Self {
        self.patches = Some(enabled);
        self
    }

    /// Whether ONNX backends export a model that has no graph on first use
    /// (default: the gate's `export`, off under `IPFS_ACCELERATE_NO_EXPORT`;
    /// `--no-export`).
    pub fn export(mut self, enabled: bool) -> Self {
        self.export = Some(enabled);
        self
    }

    /// Dump every applied rewrite into `dir` (`--dump-rewriting`).
    pub fn dump_rewriting(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dump_rewriting = Some(dir.into());
        self
    }

    /// Opens the store and returns the loader.
    pub fn build(self) -> Result<Loader, LoadError> {
        let env = |k: &str| std::env::var(k).ok();
        let cache_dir = self
            .cache_dir
            .unwrap_or_else(ipfs_accelerate_storage::cache_dir);
        let gate = self.gate.unwrap_or_else(Gate::from_env);
        Ok(Loader {
            patches: self.patches.unwrap_or(gate.patches),
            export: self.export.unwrap_or(gate.export),
            dump_rewriting: self.dump_rewriting,
            store: Store::open(cache_dir)?,
            hub_dir: self
                .hub_cache_dir
                .unwrap_or_else(|| hub_cache::default_dir(env)),
            hub: self.hub.unwrap_or_else(|| HubSettings::from_env_fn(env)),
            gate,
            ipfs_api: self.ipfs_api,
            node: Arc::default(),
        })
    }
}

/// Resolves model files through local folders, our cache, the Hub cache and
/// the Hub.
#[derive(Debug, Clone)]
pub struct Loader {
    store: Store,
    hub_dir: PathBuf,
    hub: HubSettings,
    gate: Gate,
    ipfs_api: Option<String>,
    patches: bool,
    export: bool,
    dump_rewriting: Option<PathBuf>,
    /// Whether a node answered, asked once per loader (and its clones).
    node: Arc<OnceLock<Option<IpfsClient>>>,
}

/// Why one layer did not serve a file: one line of
/// [`LoadError::NotFound`]'s "tried" list.
#[derive(Debug, thiserror::Error)]
enum LayerMiss {
    /// The gate forbids IPFS.
    #[error("IPFS: {0}")]
    IpfsOff(#[source] IpfsUnavailable),
    /// IPFS is not used for Hub ids: the gate forbids it.
    #[error("IPFS: not in use ({0})")]
    IpfsNotInUse(#[source] IpfsUnavailable),
    /// IPFS is not used for Hub ids: no node answered.
    #[error("IPFS: not in use (no node answers)")]
    NoNode,
    /// The node failed, or what it sent could not be stored.
    #[error("IPFS {api}: {source}")]
    Ipfs {
        api: String,
        #[source]
        source: StorageError,
    },
    /// The node's name index has no entry for the file.
    #[error("IPFS {api}: {id}@{revision} has no {file} in the name index")]
    NotIndexed {
        api: String,
        id: String,
        revision: String,
        file: String,
    },
    /// Our cache failed while storing what a layer sent.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `HF_HUB_OFFLINE`.
    #[error("Hub: skipped (HF_HUB_OFFLINE is set)")]
    HubOffline,
    /// The Hub refused the request and said why (gated, no such
    /// revision, ...).
    #[error("Hub {endpoint}: {reason} ({source})")]
    HubRefused {
        endpoint: String,
        reason: String,
        #[source]
        source: hf_hub::api::sync::ApiError,
    },
    /// The Hub failed or has no such file.
    #[error("Hub {endpoint}: {source}")]
    Hub {
        endpoint: String,
        #[source]
        source: hf_hub::api::sync::ApiError,
    },
}

/// How long the one-time "does a node answer" probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Loader {
    /// A builder; unset parts come from the environment.
    pub fn builder() -> LoaderBuilder {
        LoaderBuilder::default()
    }

    /// Everything from the environment.
    pub fn from_env() -> Result<Self, LoadError> {
        Self::builder().build()
    }

    /// Our content-addressed store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The gate this loader obeys.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Whether skills apply checkpoint / config patches.
    pub fn patches_enabled(&self) -> bool {
        self.patches
    }

    /// Whether ONNX backends export a model without a graph on first use.
    pub fn export_enabled(&self) -> bool {
        self.export
    }

    /// Where applied rewrites are dumped, if anywhere.
    pub fn dump_rewriting(&self) -> Option<&Path> {
        self.dump_rewriting.as_deref()
    }

    /// A client for the IPFS node, or why there is none: the gate's
    /// `IPFS_KIT_DISABLE` / `STORAGE_FORCE_LOCAL` mean no request is sent.
    pub fn ipfs(&self) -> Result<IpfsClient, IpfsUnavailable> {
        if !self.gate.ipfs {
            return Err(IpfsUnavailable::Disabled);
        }
        if self.gate.force_local {
            return Err(IpfsUnavailable::LocalOnly);
        }
        let client = IpfsClient::from_env();
        Ok(match &self.ipfs_api {
            Some(api) => IpfsClient::new(api, client.timeout()),
            None => client,
        })
    }

    /// The node when storage is distributed: the gate allows IPFS and a
    /// node answered `version` (asked once, then remembered).
    pub fn distributed(&self) -> Option<IpfsClient> {
        self.node
            .get_or_init(|| {
                let client = self.ipfs().ok()?;
                let probe = IpfsClient::new(client.api(), PROBE_TIMEOUT);
                match probe.version() {
                    Ok(version) => {
                        tracing::debug!(api = %client.api(), %version, "IPFS node answers");
                        Some(client)
                    }
                    Err(e) => {
                        tracing::debug!("no IPFS node: {e}");
                        None
                    }
                }
            })
            .clone()
    }

    /// The Python Hub cache folder in use.
    pub fn hub_cache_dir(&self) -> &Path {
        &self.hub_dir
    }

    /// True when loading goes through our storage now (applies interception
    /// on first use when the gate allows).
    pub fn intercepting(&self) -> bool {
        interception::ensure_applied(&self.gate)
    }

    /// `from_pretrained` for one Auto* kind: the required file (or its first
    /// alternative found, with shards for sharded weights) plus the optional
    /// companions that exist.
    pub fn from_pretrained(
        &self,
        model: &ModelRef,
        kind: FileKind,
    ) -> Result<Vec<ResolvedFile>, LoadError> {
        let mut found = None;
        let mut tried = Vec::new();
        for name in kind.required() {
            match self.file(model, name) {
                Ok(file) => {
                    found = Some(file);
                    break;
                }
                Err(LoadError::NotFound { tried: t, .. }) => tried.extend(t),
                Err(err) => return Err(err),
            }
        }
        let Some(first) = found else {
            return Err(LoadError::NotFound {
                model: model.to_string(),
                file: kind.required().join(" or "),
                tried,
            });
        };
        let mut files = Vec::new();
        if first.file.ends_with(".safetensors.index.json") {
            for shard in self.shards(model, &first)? {
                files.push(self.file(model, &shard)?);
            }
        }
        files.insert(0, first);
        for name in kind.optional() {
            if let Some(file) = self.optional_file(model, name)? {
                if !files.iter().any(|f| f.file == file.file) {
                    files.push(file);
                }
            }
        }
        Ok(files)
    }

    /// A file the model must have.
    pub fn file(&self, model: &ModelRef, file: &str) -> Result<ResolvedFile, LoadError> {
        // Names come from model files (modules.json, shard indexes): never
        // let them point outside the model.
        let escapes = file.is_empty()
            || file.starts_with('/')
            || file.contains('\\')
            || file.split('/').any(|part| part.is_empty() || part == "..");
        if escapes {
            return Err(LoadError::Malformed {
                model: model.to_string(),
                file: file.to_owned(),
                reason: "not a relative path inside the model".to_owned(),
            });
        }
        match model {
            ModelRef::LocalDir(dir) => self.local_dir_file(model, dir, file),
            ModelRef::Ipfs { cid } => self.snapshot_file(model, cid, file),
            ModelRef::Hub { id, revision } => {
                if self.intercepting() {
                    self.through_storage(model, id, revision, file)
                } else {
                    self.plain_hub(model, id, revision, file)
                }
            }
        }
    }

    /// A file the model may have: `Ok(None)` when no place has it.
    pub fn optional_file(
        &self,
        model: &ModelRef,
        file: &str,
    ) -> Result<Option<ResolvedFile>, LoadError> {
        match self.file(model, file) {
            Ok(found) => Ok(Some(found)),
            Err(LoadError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads and parses a JSON file of the model; a parse failure names it.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        model: &ModelRef,
        file: &ResolvedFile,
    ) -> Result<T, LoadError> {
        let text = std::fs::read_to_string(&file.path).map_err(|source| LoadError::Unreadable {
            model: model.to_string(),
            file: file.file.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| LoadError::MalformedJson {
            model: model.to_string(),
            file: file.file.clone(),
            source,
        })
    }

    fn shards(&self, model: &ModelRef, index: &ResolvedFile) -> Result<Vec<String>, LoadError> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: std::collections::BTreeMap<String, String>,
        }
        let index: Index = self.read_json(model, index)?;
        let mut shards: Vec<String> = index.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        Ok(shards)
    }

    fn local_dir_file(
        &self,
        model: &ModelRef,
        dir: &Path,
        file: &str,
    ) -> Result<ResolvedFile, LoadError> {
        let path = dir.join(file);
        if path.is_file() {
            return Ok(ResolvedFile {
                file: file.to_owned(),
                path,
                source: Layer::LocalFolder,
            });
        }
        Err(LoadError::NotFound {
            model: model.to_string(),
            file: file.to_owned(),
            tried: vec![format!("local folder {}: no such file", dir.display())],
        })
    }

    /// `ipfs://<cid>`: our cache (a snapshot with that root CID), else the
    /// IPFS node: the whole snapshot is pulled into our cache as
    /// `ipfs/<cid>`, every file verified against its CID and the folder
    /// against the root, then served from there.
    fn snapshot_file(
        &self,
        model: &ModelRef,
        cid: &str,
        file: &str,
    ) -> Result<ResolvedFile, LoadError> {
        let not_found = |tried: Vec<String>| LoadError::NotFound {
            model: model.to_string(),
            file: file.to_owned(),
            tried,
        };
        let mut tried = Vec::new();
        let (manifest, source) = match self.cached_snapshot(cid)? {
            Some(m) => (m, Layer::Cache),
            None => {
                self.store.record(Layer::Cache, false);
                tried.push(format!(
                    "our cache {}: no snapshot with root CID {cid}",
                    self.store.root().display()
                ));
                match self.pull_snapshot(cid) {
                    Ok(m) => (m, Layer::Ipfs),
                    Err(why) => {
                        self.store.record(Layer::Ipfs, false);
                        tracing::warn!("{why}");
                        tried.push(why.to_string());
                        return Err(not_found(tried));
                    }
                }
            }
        };
        let Some(entry) = manifest.files.iter().find(|f| f.path == file) else {
            self.store.record(source, false);
            tried.push(format!(
                "{source}: snapshot {cid} ({}@{}) has no such file",
                manifest.id, manifest.revision
            ));
            return Err(not_found(tried));
        };
        let path = self.store.get(&entry.sha256)?;
        self.store.record(source, true);
        self.store.touch(&manifest.id, &manifest.revision);
        Ok(ResolvedFile {
            file: file.to_owned(),
            path,
            source,
        })
    }

    fn cached_snapshot(&self, cid: &str) -> Result<Option<Manifest>, LoadError> {
        let found = self
            .store
            .manifests()?
            .into_iter()
            .find(|m| ipfs_accelerate_storage::same_cid(&m.root_cid, cid))
            .filter(|m| m.files.iter().all(|f| self.store.has(&f.sha256)));
        Ok(found)
    }

    /// Pulls `cid` from the node into our cache; the error is the line for
    /// the "tried" list.
    fn pull_snapshot(&self, cid: &str) -> Result<Manifest, LayerMiss> {
        let client = self.ipfs().map_err(LayerMiss::IpfsOff)?;
        let describe = |source: StorageError| LayerMiss::Ipfs {
            api: client.api().to_owned(),
            source,
        };
        // One process pulls; the others wait and then find it cached.
        let _lock = self.store.lock(&format!("pull/{cid}")).map_err(describe)?;
        if let Ok(Some(m)) = self.cached_snapshot(cid) {
            return Ok(m);
        }
        tracing::info!(cid, api = %client.api(), "pulling snapshot from IPFS");
        ipfs::pull(&self.store, &client, cid, &format!("ipfs/{cid}"), "main").map_err(describe)
    }

    fn through_storage(
        &self,
        model: &ModelRef,
        id: &str,
        revision: &str,
        file: &str,
    ) -> Result<ResolvedFile, LoadError> {
        // One process fetches a file; the others wait and then find it cached.
        let _lock = self.store.lock(&format!("fetch/{id}@{revision}/{file}"))?;
        let mut tried = Vec::new();
        let cache_root = self.store.root().display().to_string();

        match self.store.manifest(id, revision)? {
            Some(manifest) => match manifest.files.iter().find(|f| f.path == file) {
                Some(entry) => match self.store.get(&entry.sha256) {
                    Ok(path) => {
                        self.store.record(Layer::Cache, true);
                        self.store.touch(id, revision);
                        return Ok(ResolvedFile {
                            file: file.to_owned(),
                            path,
                            source: Layer::Cache,
                        });
                    }
                    Err(
                        err @ (StorageError::Corrupt { .. } | StorageError::MissingBlob { .. }),
                    ) => {
                        tracing::warn!("{err}; fetching {file} again");
                        tried.push(format!("our cache {cache_root}: {err}"));
                    }
                    Err(err) => return Err(err.into()),
                },
                None if manifest.complete => {
                    // An imported snapshot is whole: the file does not exist.
                    self.store.record(Layer::Cache, false);
                    return Err(LoadError::NotFound {
                        model: model.to_string(),
                        file: file.to_owned(),
                        tried: vec![format!(
                            "our cache {cache_root}: the imported snapshot {id}@{revision} has no such file"
                        )],
                    });
                }
                None => tried.push(format!("our cache {cache_root}: snapshot has no such file")),
            },
            None => tried.push(format!(
                "our cache {cache_root}: no snapshot of {id}@{revision}"
            )),
        }
        self.store.record(Layer::Cache, false);

        let origin = match hub_cache::lookup(&self.hub_dir, id, revision, file) {
            Some(path) => Some((path, Layer::HubCache)),
            None => {
                tried.push(format!("Hub cache {}: not there", self.hub_dir.display()));
                self.store.record(Layer::HubCache, false);
                match self.ipfs_layer(id, revision, file) {
                    Ok(path) => {
                        return Ok(ResolvedFile {
                            file: file.to_owned(),
                            path,
                            source: Layer::Ipfs,
                        })
                    }
                    Err(why) => tried.push(why.to_string()),
                }
                match self.download(id, revision, file) {
                    Ok(path) => Some((path, Layer::Hub)),
                    Err(why) => {
                        tried.push(why.to_string());
                        None
                    }
                }
            }
        };
        let Some((origin_path, source)) = origin else {
            return Err(LoadError::NotFound {
                model: model.to_string(),
                file: file.to_owned(),
                tried,
            });
        };
        self.store.record(source, true);
        let blob = self.store.put_file(&origin_path)?;
        check_hub_blob(&origin_path, &blob.sha256)?;
        let manifest = self.store.add_to_manifest(id, revision, file, &blob)?;
        let path = self.store.get(&blob.sha256)?;
        tracing::info!(model = %model, file, source = ?source, "stored in our cache");
        self.write_through(id, revision, &manifest, file);
        Ok(ResolvedFile {
            file: file.to_owned(),
            path,
            source,
        })
    }

    /// The IPFS layer for a Hub id: the name index on the node gives the
    /// file's CID; the content is verified against it on the way into our
    /// cache. The error is the line for the "tried" list.
    fn ipfs_layer(&self, id: &str, revision: &str, file: &str) -> Result<PathBuf, LayerMiss> {
        let Some(client) = self.distributed() else {
            return Err(match self.ipfs() {
                Err(why) => LayerMiss::IpfsNotInUse(why),
                Ok(_) => LayerMiss::NoNode,
            });
        };
        let api = client.api().to_owned();
        let found = ipfs::name_index::lookup(&client, id, revision, file).and_then(|cid| {
            let Some(cid) = cid else { return Ok(None) };
            let expected = ipfs_accelerate_storage::Expected {
                cid: cid.clone(),
                sha256: None,
            };
            ipfs::fetch_cid(&self.store, &client, &cid, &expected).map(Some)
        });
        match found {
            Ok(Some(blob)) => {
                self.store.record(Layer::Ipfs, true);
                self.store.add_to_manifest(id, revision, file, &blob)?;
                tracing::info!(model = %format!("{id}@{revision}"), file, cid = %blob.cid, "fetched from IPFS");
                Ok(self.store.get(&blob.sha256)?)
            }
            Ok(None) => {
                self.store.record(Layer::Ipfs, false);
                Err(LayerMiss::NotIndexed {
                    api,
                    id: id.to_owned(),
                    revision: revision.to_owned(),
                    file: file.to_owned(),
                })
            }
            Err(e) => {
                // A node that fails mid-transfer: on to the next layer.
                self.store.record(Layer::Ipfs, false);
                tracing::warn!("IPFS layer failed, trying the next one: {e}");
                Err(LayerMiss::Ipfs { api, source: e })
            }
        }
    }

    /// Write-through: a file that came from the Hub (or its cache) is also
    /// added to IPFS when storage is distributed. Best effort: a failure is
    /// a warning, never a failed load.
    fn write_through(&self, id: &str, revision: &str, manifest: &Manifest, file: &str) {
        let Some(client) = self.distributed() else {
            return;
        };
        let Some(entry) = manifest.file(file) else {
            return;
        };
        match ipfs::write_through(&self.store, &client, id, revision, entry) {
            Ok(()) => {
                tracing::info!(model = %format!("{id}@{revision}"), file, cid = %entry.cid, "added to IPFS")
            }
            Err(e) => tracing::warn!("could not add {file} of {id}@{revision} to IPFS: {e}"),
        }
    }

    /// Restored interception: the Hub cache, then the Hub, as plain hf-hub.
    fn plain_hub(
        &self,
        model: &ModelRef,
        id: &str,
        revision: &str,
        file: &str,
    ) -> Result<ResolvedFile, LoadError> {
        if let Some(path) = hub_cache::lookup(&self.hub_dir, id, revision, file) {
            return Ok(ResolvedFile {
                file: file.to_owned(),
                path,
                source: Layer::HubCache,
            });
        }
        let mut tried = vec![format!("Hub cache {}: not there", self.hub_dir.display())];
        match self.download(id, revision, file) {
            Ok(path) => Ok(ResolvedFile {
                file: file.to_owned(),
                path,
                source: Layer::Hub,
            }),
            Err(why) => {
                tried.push(why.to_string());
                Err(LoadError::NotFound {
                    model: model.to_string(),
                    file: file.to_owned(),
                    tried,
                })
            }
        }
    }

    /// Downloads from the Hub into the Hub cache; the error is the line for
    /// the "tried" list.
    fn download(&self, id: &str, revision: &str, file: &str) -> Result<PathBuf, LayerMiss> {
        if self.hub.offline {
            return Err(LayerMiss::HubOffline);
        }
        self.hub
            .download(&self.hub_dir, id, revision, file)
            .map_err(|source| {
                let endpoint = self.hub.endpoint.clone();
                let refused = matches!(
                    &source,
                    hf_hub::api::sync::ApiError::RequestError(e)
                        if matches!(**e, ureq::Error::StatusCode(401 | 403 | 404))
                );
                match refused
                    .then(|| self.hub.explain_refusal(id, revision, file))
                    .flatten()
                {
                    Some(reason) => LayerMiss::HubRefused {
                        endpoint,
                        reason,
                        source,
                    },
                    None => LayerMiss::Hub { endpoint, source },
                }
            })
    }
}

/// The sha256 a Hub cache file claims: `hf-hub` and `huggingface_hub`
/// store a large (LFS) file's blob under its `X-Linked-Etag`, which is the
/// sha256 of its content; small files are named by a git blob id instead.
fn hub_blob_sha256(snapshot_file: &Path) -> Option<String> {
    let target = std::fs::read_link(snapshot_file).ok()?;
    let name = target.file_name()?.to_str()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| name.to_ascii_lowercase())
}

/// A Hub cache file whose content does not hash to the sha256 it is named
/// by (a corrupted disk, an interrupted or tampered write) never enters a
/// manifest: its Hub cache copy is removed, so the next load downloads it
/// again, and the load fails with the mismatch.
fn check_hub_blob(snapshot_file: &Path, actual: &str) -> Result<(), LoadError> {
    let Some(expected) = hub_blob_sha256(snapshot_file) else {
        return Ok(());
    };
    if expected == actual {
        return Ok(());
    }
    if let Ok(blob) = std::fs::canonicalize(snapshot_file) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(snapshot_file);
    Err(StorageError::ContentMismatch {
        source_name: format!(
            "the Hub cache's {} (removed; load again to download it anew)",
            snapshot_file.display()
        ),
        expected: format!("sha256 {expected}"),
        actual: format!("sha256 {actual}"),
    }
    .into())
}
