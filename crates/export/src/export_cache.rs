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
use super::{model_io, OnnxError};
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

/// True when `model`'s `model_type` has an exporter (reads only
/// `config.json`).
pub fn can_export(loader: &Loader, model: &ModelRef) -> Result<bool, OnnxError> {
    let (model_type, _) = model_type(loader, model)?;
    Ok(graph_files(&model_type).is_some())
}

/// The sha256 of a resolved file: a blob of our cache is named by it
/// (and was verified when the loader served it); other files are hashed.
fn content_sha256(file: &ResolvedFile) -> Result<String, OnnxError> {
    let named = file
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
    match (file.source, named) {
        (Layer::Cache | Layer::Ipfs, Some(name)) => Ok(name.to_owned()),
        _ => sha256_of_file(&file.path).map_err(|e| storage_error(LoadError::from(e))),
    }
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
pub fn cached_export(loader: &Loader, model: &ModelRef) -> Result<CachedExport, OnnxError> {
    let name = model.to_string();
    let (model_type, config_file) = model_type(loader, model)?;
    let Some(graph_names) = graph_files(&model_type) else {
        return Err(OnnxError::Unsupported {
            model: name,
            reason: format!("model_type '{model_type}' has no exporter"),
        });
    };
    let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
    let config = SourceFile {
        file: config_file.file.clone(),
        sha256: content_sha256(&config_file)?,
    };
    let weights = weight_files
        .iter()
        .map(|f| {
            Ok(SourceFile {
                file: f.file.clone(),
                sha256: content_sha256(f)?,
            })
        })
        .collect::<Result<Vec<_>, OnnxError>>()?;
    let key = export_key(&model_type, &config, &weights);
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
    let graphs = cached_or_made(loader.store(), &name, &key, graph_names, provenance, || {
        let exported = export_model(loader, model, &ExportOptions::default())?;
        Ok(exported
            .graphs
            .iter()
            .map(|(file, graph)| ((*file).to_owned(), model_io::encode(graph)))
            .collect())
    })?;
    Ok(CachedExport {
        key,
        graphs: graphs.0,
        sources,
        export_seconds: graphs.1,
    })
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
        sha256: content_sha256(merged)?,
    };
    let mut h = Sha256::new();
    h.update(format!(
        "ipfs-accelerate merged decoder split v{SPLIT_VERSION}\n"
    ));
    h.update(format!("merged {}\n", source.sha256));
    let key = hex::encode(&h.finalize()[..16]);
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
    let path = merged.path.clone();
    let (graphs, seconds) = cached_or_made(loader.store(), &name, &key, names, provenance, || {
        let whole = model_io::read(&path)?;
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
            out.push(((*file).to_owned(), model_io::encode(&graph)));
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
    make: impl FnOnce() -> Result<Vec<(String, Vec<u8>)>, OnnxError>,
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
    let mut blobs: Vec<(String, BlobInfo)> = Vec::with_capacity(made.len() + 1);
    for (file, bytes) in &made {
        let info = store.put_bytes(bytes).map_err(storage)?;
        blobs.push((file.clone(), info));
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
        .filter(|(file, _)| file != PROVENANCE_FILE)
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
    let seconds = provenance(store, &manifest)
        .map(|p| p.export_seconds)
        .unwrap_or_default();
    Ok(Some((graphs, seconds)))
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
