//! Export on first use: the ONNX graphs of a model that ships none, built
//! once by [`export_model`] and kept in our content-addressed cache.
//!
//! The cache key is what determines the graphs: the exporter's version, the
//! `model_type`, and the sha256 of `config.json` and of every weight file.
//! The graphs and a provenance file (`export.json`) are ordinary blobs,
//! recorded as the snapshot `onnx-export@<key>`, so they are verified on
//! every read, kept by `cache gc` like any model, listed by `cache ls` and
//! shared over IPFS by `cache publish` (with the model they came from, see
//! [`exports_of`]). One process exports; another asking at the same time
//! waits on the key's lock and then finds the graphs cached.

use super::export::{export_model, graph_files, ExportOptions, EXPORTER_VERSION};
use super::proto::ModelProto;
use super::{external_data, model_io, OnnxError};
use ipfs_accelerate_loader::{FileKind, LoadError, Loader, ModelRef, ResolvedFile};
use ipfs_accelerate_storage::{sha256_of_file, BlobInfo, Layer, Manifest, StorageError, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Instant;

/// The manifest id of exported graphs (the key is the revision).
pub const EXPORT_MANIFEST_ID: &str = "onnx-export";
/// The provenance file recorded beside the graphs.
pub const PROVENANCE_FILE: &str = "export.json";
/// Where a model keeps its ONNX graphs (optimum's layout): the answer's
/// `files` name an exported graph as the model's own would be named.
const GRAPH_DIR: &str = "onnx/";

/// [`Provenance::made_by`] of graphs our exporter made from the weights.
pub const MADE_BY_EXPORTER: &str = "exporter";
/// [`Provenance::made_by`] of graphs split from optimum's merged decoder.
pub const MADE_BY_SPLIT: &str = "merged decoder split";
/// The version of [`split_merged_decoder`]'s rewrite (part of its key).
const SPLIT_VERSION: u32 = 1;
/// The graphs a merged decoder splits into, in the seq2seq runner's order.
const SPLIT_GRAPHS: [&str; 2] = ["decoder_model.onnx", "decoder_with_past_model.onnx"];

fn exporter() -> String {
    MADE_BY_EXPORTER.to_owned()
}

/// A model file the export was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Its path in the model.
    pub file: String,
    /// The sha256 of its content.
    pub sha256: String,
}

/// `export.json`: what an exported snapshot was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The model as given when it was exported.
    pub model: String,
    /// Its `model_type` (empty for a split merged decoder).
    pub model_type: String,
    /// What made it: [`MADE_BY_EXPORTER`] (from the weights) or
    /// [`MADE_BY_SPLIT`] (from optimum's merged decoder).
    #[serde(default = "exporter")]
    pub made_by: String,
    /// The version of what made it ([`EXPORTER_VERSION`], or the split's).
    pub exporter_version: u32,
    /// `config.json` (the merged decoder, for a split).
    pub config: SourceFile,
    /// The weight files.
    pub weights: Vec<SourceFile>,
    /// The graph files, in order.
    pub graphs: Vec<String>,
    /// How long the export took, in seconds.
    pub export_seconds: f64,
}

/// The graphs of a model, exported now or found cached.
#[derive(Debug, Clone)]
pub struct CachedExport {
    /// The cache key (the snapshot's revision).
    pub key: String,
    /// The graphs, named `onnx/<file>` as in the model's own layout;
    /// `source` is [`Layer::Export`] when exported by this call, else
    /// [`Layer::Cache`].
    pub graphs: Vec<ResolvedFile>,
    /// The model files the key was computed from (config and weights).
    pub sources: Vec<ResolvedFile>,
    /// Seconds the export took (this call's, or the recorded one).
    pub export_seconds: f64,
}

impl CachedExport {
    /// True when this call exported the graphs.
    pub fn exported_now(&self) -> bool {
        self.graphs.iter().any(|g| g.source == Layer::Export)
    }
}

/// The `model_type` of `model`'s `config.json`, and the file.
fn model_type(loader: &Loader, model: &ModelRef) -> Result<(String, ResolvedFile), OnnxError> {
    let config = loader.file(model, "config.json")?;
    let raw: serde_json::Value = loader.read_json(model, &config)?;
    let model_type = raw
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok((model_type, config))
}

/// The graph files our exporter makes for `model` (`None`: its
/// `model_type` has no exporter); reads only `config.json`.
pub fn exportable_graphs(
    loader: &Loader,
    model: &ModelRef,
) -> Result<Option<&'static [&'static str]>, OnnxError> {
    let (model_type, _) = model_type(loader, model)?;
    Ok(graph_files(&model_type))
}

/// The sha256 of a resolved file: a blob of our cache is named by it
/// (and was verified when the loader served it); another file is hashed
/// once, and its hash remembered by path, size and modification time
/// (`export-hashes/` in the cache), so a cached export is found without
/// reading multi-gigabyte weights on every load.
fn content_sha256(store: &Store, file: &ResolvedFile) -> Result<String, OnnxError> {
    let hex64 = |n: &str| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
    let named = file
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| hex64(n));
    if let (Layer::Cache | Layer::Ipfs, Some(name)) = (file.source, named) {
        return Ok(name.to_owned());
    }
    let stamp = std::fs::metadata(&file.path).ok().and_then(|m| {
        let mtime = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!(
            "{} {} {}",
            file.path.display(),
            m.len(),
            mtime.as_nanos()
        ))
    });
    let memo = stamp.as_ref().map(|stamp| {
        let name = hex::encode(&Sha256::digest(stamp.as_bytes())[..16]);
        store.root().join("export-hashes").join(name)
    });
    if let Some(known) = memo
        .as_ref()
        .and_then(|m| std::fs::read_to_string(m).ok())
        .filter(|k| hex64(k.trim()))
    {
        return Ok(known.trim().to_owned());
    }
    let sha = sha256_of_file(&file.path).map_err(|e| storage_error(LoadError::from(e)))?;
    if let Some(memo) = memo {
        // Without the memo the file is hashed again next time.
        remember(&memo, &sha);
    }
    Ok(sha)
}

/// Writes a memo file of the cache (a weight hash, a failed export), best
/// effort: a cache that cannot take it only loses the shortcut.
fn remember(path: &std::path::Path, contents: &str) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, contents));
    if let Err(e) = written {
        tracing::debug!(memo = %path.display(), "cannot write a cache memo: {e}");
    }
}

/// The suffix of a graph's external data file (optimum's `model.onnx_data`).
pub const DATA_SUFFIX: &str = "_data";

/// The memory available now (`MemAvailable` of `/proc/meminfo`), where the
/// system says.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The float32 bytes the checkpoint's tensors take, from the safetensors
/// headers alone (no tensor is read).
fn f32_bytes(files: &[ResolvedFile]) -> u64 {
    use std::io::Read;
    let mut total = 0u64;
    for file in files.iter().filter(|f| f.file.ends_with(".safetensors")) {
        let Ok(mut f) = std::fs::File::open(&file.path) else {
            continue;
        };
        let mut len = [0u8; 8];
        if f.read_exact(&mut len).is_err() {
            continue;
        }
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            continue;
        }
        let mut header = vec![0u8; len as usize];
        if f.read_exact(&mut header).is_err() {
            continue;
        }
        let Ok(serde_json::Value::Object(tensors)) = serde_json::from_slice(&header) else {
            continue;
        };
        for (_, t) in tensors.iter().filter(|(k, _)| *k != "__metadata__") {
            let numel = t["shape"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(serde_json::Value::as_u64)
                        .product::<u64>()
                })
                .unwrap_or(0);
            total = total.saturating_add(numel.saturating_mul(4));
        }
    }
    total
}

fn storage_error(e: LoadError) -> OnnxError {
    OnnxError::Load(e)
}

/// The key of an export: the exporter's version, the `model_type`, and the
/// content of the config and the weights (by path, sorted).
fn export_key(model_type: &str, config: &SourceFile, weights: &[SourceFile]) -> String {
    let mut h = Sha256::new();
    h.update(format!("ipfs-accelerate onnx export v{EXPORTER_VERSION}\n"));
    h.update(format!("model_type {model_type}\n"));
    h.update(format!("config {}\n", config.sha256));
    let mut sorted: Vec<&SourceFile> = weights.iter().collect();
    sorted.sort_by(|a, b| a.file.cmp(&b.file));
    for w in sorted {
        h.update(format!("weights {} {}\n", w.file, w.sha256));
    }
    // 128 bits: plenty against collisions, short enough for file names.
    hex::encode(&h.finalize()[..16])
}

/// The graphs of `model`: from the cache when an earlier export of the
/// same config and weights is there (every blob verified), else exported
/// now and stored. Fails for a `model_type` without an exporter
/// ([`OnnxError::Unsupported`]) and when the export fails; a cached graph
/// that fails verification is moved aside and exported again.
pub fn cached_export(
    loader: &Loader,
    model: &ModelRef,
    retry_failed: bool,
) -> Result<CachedExport, OnnxError> {
    let name = model.to_string();
    let (model_type, config_file) = model_type(loader, model)?;
    let Some(graph_names) = graph_files(&model_type) else {
        return Err(OnnxError::Unsupported {
            model: name,
            reason: format!("model_type '{model_type}' has no exporter"),
        });
    };
    let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
    let weight_bytes = f32_bytes(&weight_files);
    let store = loader.store();
    let config = SourceFile {
        file: config_file.file.clone(),
        sha256: content_sha256(store, &config_file)?,
    };
    let weights = weight_files
        .iter()
        .map(|f| {
            Ok(SourceFile {
                file: f.file.clone(),
                sha256: content_sha256(store, f)?,
            })
        })
        .collect::<Result<Vec<_>, OnnxError>>()?;
    let key = export_key(&model_type, &config, &weights);
    let failure_memo = store.root().join("export-failures").join(&key);
    if !retry_failed {
        if let Ok(reason) = std::fs::read_to_string(&failure_memo) {
            return Err(OnnxError::Unsupported {
                model: name,
                reason: format!("an earlier export of these weights failed: {reason}"),
            });
        }
    }
    let mut sources = vec![config_file];
    sources.extend(weight_files);
    let provenance = Provenance {
        model: name.clone(),
        model_type,
        made_by: MADE_BY_EXPORTER.to_owned(),
        exporter_version: EXPORTER_VERSION,
        config,
        weights,
        graphs: graph_names.iter().map(|g| (*g).to_owned()).collect(),
        export_seconds: 0.0,
    };
    let made = cached_or_made(store, &name, &key, graph_names, provenance, || {
        // Refused from the headers (only when there is no cached export):
        // the exporter holds every tensor in float32 twice (the
        // checkpoint's and the graph's) while it builds.
        let bytes = weight_bytes;
        if let Some(available) = available_memory().filter(|&a| bytes.saturating_mul(2) > a) {
            return Err(OnnxError::Unsupported {
                model: name.clone(),
                reason: format!(
                    "its float32 weights are {bytes} bytes; exporting them needs about twice that in memory, and {available} bytes are available"
                ),
            });
        }
        let options = ExportOptions {
            external_data: true,
            ..ExportOptions::default()
        };
        let exported = export_model(loader, model, &options)?;
        Ok(exported
            .graphs
            .into_iter()
            .map(|(file, graph)| (file.to_owned(), graph))
            .collect())
    });
    let (graphs, export_seconds) = match made {
        Ok(made) => made,
        Err(err) => {
            // Remembered, so `auto` does not pay for the same failure on
            // every load (the key holds the exporter's version: a newer
            // exporter tries again). Not for storage errors, which may pass.
            if !matches!(err, OnnxError::Load(_) | OnnxError::Io { .. }) {
                remember(&failure_memo, &err.to_string());
            }
            return Err(err);
        }
    };
    std::fs::remove_file(&failure_memo).ok();
    Ok(CachedExport {
        key,
        graphs,
        sources,
        export_seconds,
    })
}

/// The key of a merged-decoder split: the split's version and the merged
/// graph's content.
fn split_key(merged_sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "ipfs-accelerate merged decoder split v{SPLIT_VERSION}\n"
    ));
    h.update(format!("merged {merged_sha256}\n"));
    hex::encode(&h.finalize()[..16])
}

/// The key `provenance` describes (`None` for one this build cannot make):
/// a cached snapshot whose provenance does not give its own key is not
/// trusted (a pulled or damaged snapshot).
fn key_of(p: &Provenance) -> Option<String> {
    match p.made_by.as_str() {
        MADE_BY_EXPORTER if p.exporter_version == EXPORTER_VERSION => {
            Some(export_key(&p.model_type, &p.config, &p.weights))
        }
        MADE_BY_SPLIT if p.exporter_version == SPLIT_VERSION => Some(split_key(&p.config.sha256)),
        _ => None,
    }
}

/// optimum's merged decoder (`decoder_model_merged.onnx`: one graph whose
/// `If` on `use_cache_branch` holds both steps) split into the two graphs
/// the seq2seq runner takes, `onnx/decoder_model.onnx` (the branch bound
/// false: the first step) and `onnx/decoder_with_past_model.onnx` (bound
/// true), with [`crate::rewrites::fold_constant_if`], each without the
/// inputs its branch does not read. Kept in the cache like an export, keyed
/// by the merged graph's content and this split's version.
pub fn split_merged_decoder(
    loader: &Loader,
    model: &ModelRef,
    merged: &ResolvedFile,
) -> Result<CachedExport, OnnxError> {
    let name = model.to_string();
    let source = SourceFile {
        file: merged.file.clone(),
        sha256: content_sha256(loader.store(), merged)?,
    };
    let key = split_key(&source.sha256);
    let names: &[&str] = &SPLIT_GRAPHS;
    let provenance = Provenance {
        model: name.clone(),
        model_type: String::new(),
        made_by: MADE_BY_SPLIT.to_owned(),
        exporter_version: SPLIT_VERSION,
        config: source.clone(),
        weights: Vec::new(),
        graphs: names.iter().map(|g| (*g).to_owned()).collect(),
        export_seconds: 0.0,
    };
    let (path, merged_name) = (merged.path.clone(), merged.file.clone());
    let (graphs, seconds) = cached_or_made(loader.store(), &name, &key, names, provenance, || {
        let whole = model_io::read(&path)?;
        // Weights in a file beside the graph would not follow its blob.
        let external = whole.graph.as_ref().is_some_and(|g| {
            g.initializer
                .iter()
                .any(|t| !t.external_data.is_empty() || t.data_location == 1)
        });
        if external {
            return Err(OnnxError::Unsupported {
                model: name.clone(),
                reason: format!("{} keeps its weights in external data files", merged_name),
            });
        }
        let mut out = Vec::with_capacity(2);
        for (file, cached) in SPLIT_GRAPHS.iter().zip([false, true]) {
            let mut graph = whole.clone();
            crate::rewrites::fold_constant_if(&mut graph, &[("use_cache_branch", cached)])?;
            if cached {
                // The cached branch returns placeholders (empty tensors) for
                // the cross-attention cache, which does not change: drop
                // them, as optimum's `decoder_with_past_model.onnx` has none.
                if let Some(g) = graph.graph.as_mut() {
                    g.output.retain(|o| !is_cross_attention_cache(&o.name));
                }
                crate::rewrites::prune(&mut graph)?;
            }
            crate::rewrites::drop_unused_inputs(&mut graph)?;
            out.push(((*file).to_owned(), graph));
        }
        Ok(out)
    })?;
    Ok(CachedExport {
        key,
        graphs,
        sources: vec![merged.clone()],
        export_seconds: seconds,
    })
}

/// `present.{i}.encoder.key/value`: the cross-attention part of a
/// seq2seq decoder's cache.
fn is_cross_attention_cache(name: &str) -> bool {
    name.starts_with("present.") && name.contains(".encoder.")
}

/// The graph set `key` from the cache, else made by `make` (encoded
/// graphs, named as `graph_names`) and stored with `provenance` (its time
/// filled in), under the key's cross-process lock. Returns the graphs
/// (`onnx/<file>`, source [`Layer::Cache`] or [`Layer::Export`]) and the
/// seconds making them took (now, or when they were made).
fn cached_or_made(
    store: &Store,
    name: &str,
    key: &str,
    graph_names: &[&str],
    mut provenance: Provenance,
    make: impl FnOnce() -> Result<Vec<(String, ModelProto)>, OnnxError>,
) -> Result<(Vec<ResolvedFile>, f64), OnnxError> {
    let storage = |e: StorageError| storage_error(LoadError::from(e));
    // One maker per key across processes: a second asker waits here, then
    // finds the graphs.
    let _lock = store.lock(&format!("export/{key}")).map_err(storage)?;
    if let Some(found) = cached_graphs(store, key, graph_names)? {
        store.record(Layer::Cache, true);
        store.touch(EXPORT_MANIFEST_ID, key);
        tracing::info!(model = %name, key, "ONNX graphs from the export cache");
        return Ok(found);
    }
    store.record(Layer::Cache, false);

    tracing::info!(model = %name, key, made_by = %provenance.made_by, "making ONNX graphs on first use");
    let started = Instant::now();
    let made = make()?;
    let mut blobs: Vec<(String, BlobInfo)> = Vec::with_capacity(2 * made.len() + 1);
    for (file, mut graph) in made {
        // The large initializers go to `<file>_data`, a blob beside the
        // graph's (both are named by their sha256 in one folder): the graph
        // names its data blob, and ONNX Runtime maps it.
        // In the store's `tmp/` as a `.part`, which the store sweeps if this
        // process dies before removing it.
        let tmp = store
            .root()
            .join("tmp")
            .join(format!("export-{key}-{}.part", std::process::id()));
        let io = |source| OnnxError::Io {
            path: tmp.display().to_string(),
            source,
        };
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        let written = external_data::externalize(&mut graph, &mut out, "");
        let flushed = written.and_then(|n| std::io::Write::flush(&mut out).map(|()| n));
        drop(out);
        let stored = match flushed {
            Ok(0) => Ok(None),
            Ok(_) => store.put_file(&tmp).map(Some).map_err(storage),
            Err(source) => Err(io(source)),
        };
        std::fs::remove_file(&tmp).ok();
        if let Some(info) = stored? {
            external_data::set_location(&mut graph, &info.sha256);
            blobs.push((format!("{file}{DATA_SUFFIX}"), info));
        }
        let info = store
            .put_bytes(&model_io::encode(&graph))
            .map_err(storage)?;
        blobs.push((file, info));
    }
    let seconds = started.elapsed().as_secs_f64();
    provenance.export_seconds = seconds;
    let json = serde_json::to_vec_pretty(&provenance).map_err(|e| OnnxError::Unsupported {
        model: name.to_owned(),
        reason: format!("cannot write {PROVENANCE_FILE}: {e}"),
    })?;
    let info = store.put_bytes(&json).map_err(storage)?;
    blobs.push((PROVENANCE_FILE.to_owned(), info));
    // The manifest is written last: a process killed before this point
    // leaves only unreferenced blobs, never a half export.
    store
        .record_files(EXPORT_MANIFEST_ID, key, &blobs)
        .map_err(storage)?;
    store.record(Layer::Export, true);
    tracing::info!(model = %name, key, seconds, "ONNX graphs made and cached");
    let graphs = blobs
        .iter()
        .filter(|(file, _)| graph_names.contains(&file.as_str()))
        .map(|(file, info)| ResolvedFile {
            file: format!("{GRAPH_DIR}{file}"),
            path: store.blob_path(&info.sha256),
            source: Layer::Export,
        })
        .collect();
    Ok((graphs, seconds))
}

/// The cached graphs of `key` (verified) and the recorded export time;
/// `None` when there is no complete export (or a blob failed verification,
/// which moves it aside).
fn cached_graphs(
    store: &Store,
    key: &str,
    graph_names: &[&str],
) -> Result<Option<(Vec<ResolvedFile>, f64)>, OnnxError> {
    let storage = |e: StorageError| storage_error(LoadError::from(e));
    let Some(manifest) = store.manifest(EXPORT_MANIFEST_ID, key).map_err(storage)? else {
        return Ok(None);
    };
    let mut graphs = Vec::with_capacity(graph_names.len());
    for file in graph_names {
        let Some(entry) = manifest.file(file) else {
            tracing::warn!(
                key,
                file,
                "the cached export lacks a graph; exporting again"
            );
            return Ok(None);
        };
        match store.get(&entry.sha256) {
            Ok(path) => graphs.push(ResolvedFile {
                file: format!("{GRAPH_DIR}{file}"),
                path,
                source: Layer::Cache,
            }),
            Err(err @ (StorageError::Corrupt { .. } | StorageError::MissingBlob { .. })) => {
                tracing::warn!("{err}; exporting again");
                return Ok(None);
            }
            Err(err) => return Err(storage(err)),
        }
    }
    // The graphs' data files, verified like them.
    for entry in manifest
        .files
        .iter()
        .filter(|f| f.path.ends_with(DATA_SUFFIX))
    {
        match store.get(&entry.sha256) {
            Ok(_) => {}
            Err(err @ (StorageError::Corrupt { .. } | StorageError::MissingBlob { .. })) => {
                tracing::warn!("{err}; exporting again");
                return Ok(None);
            }
            Err(err) => return Err(storage(err)),
        }
    }
    let Some(made) = provenance(store, &manifest).filter(|p| key_of(p).as_deref() == Some(key))
    else {
        tracing::warn!(
            key,
            "the cached export's provenance does not give its key; making it again"
        );
        return Ok(None);
    };
    Ok(Some((graphs, made.export_seconds)))
}

/// The provenance of an export snapshot (`None` when unreadable).
pub fn provenance(store: &Store, manifest: &Manifest) -> Option<Provenance> {
    let entry = manifest.file(PROVENANCE_FILE)?;
    let path = store.get(&entry.sha256).ok()?;
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The export snapshots made from the files of `model` (a manifest of our
/// cache): those whose config and weights are all among its blobs.
/// `cache publish` shares them with the model.
pub fn exports_of(store: &Store, model: &Manifest) -> Result<Vec<Manifest>, StorageError> {
    let held = |sha: &str| model.files.iter().any(|f| f.sha256 == sha);
    Ok(store
        .manifests()?
        .into_iter()
        .filter(|m| m.id == EXPORT_MANIFEST_ID)
        .filter(|m| {
            provenance(store, m).is_some_and(|p| {
                held(&p.config.sha256) && p.weights.iter().all(|w| held(&w.sha256))
            })
        })
        .collect())
}
