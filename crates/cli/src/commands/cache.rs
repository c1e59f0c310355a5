//! `cache import | ls | verify | publish | pull | pin | unpin | gc | warm`.

use super::Context;
use crate::output::{print_json, print_text};
use anyhow::Context as _;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Import a model folder into the cache as ID[@revision].
    Import {
        /// The folder to import.
        dir: PathBuf,
        /// The id it is known by (org/name[@revision]).
        #[arg(long = "as", value_name = "ID")]
        id: String,
    },
    /// List cached models and the hit/miss counters.
    Ls,
    /// Add a cached snapshot to the IPFS node as one folder, pinned; prints
    /// its root CID (the node must compute the same one we do).
    Publish {
        /// The cached model (org/name[@revision]).
        id: String,
    },
    /// Fetch a snapshot folder from the IPFS node into the cache as ID;
    /// every file is verified against its CID before it is stored.
    Pull {
        /// The snapshot's root CID.
        cid: String,
        /// The id it is known by here (org/name[@revision]).
        #[arg(long = "as", value_name = "ID")]
        id: String,
    },
    /// Keep a cached model through every `gc` (and pin its root CID on the
    /// IPFS node when storage is distributed).
    Pin {
        /// The cached model (org/name[@revision]).
        id: String,
    },
    /// Undo `pin`.
    Unpin {
        /// The cached model (org/name[@revision]).
        id: String,
    },
    /// Free space: drop unpinned, not recently used models (least recently
    /// used first) down to a size budget, and blobs no model refers to.
    Gc {
        /// Size budget in bytes for the blobs (none: only unreferenced
        /// blobs are removed).
        #[arg(long, value_name = "BYTES")]
        max_bytes: Option<u64>,
        /// Models used within this many seconds are kept.
        #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
        keep_recent: u64,
    },
    /// Pre-fetch models (Hub ids, ipfs://CID, folders) into the cache.
    Warm {
        /// Models to fetch.
        models: Vec<String>,
        /// A file with more models, one per line (# comments allowed).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Re-hash every blob and report corrupt or missing ones.
    Verify {
        /// Exit non-zero when something is corrupt or missing.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Serialize)]
struct LsModel {
    id: String,
    revision: String,
    files: usize,
    bytes: u64,
    root_cid: String,
}

/// `id@revision (root cid)`: how the text answers name a cached snapshot.
fn named(manifest: &ipfs_accelerate::Manifest) -> String {
    format!(
        "{}@{} (root {})",
        manifest.id, manifest.revision, manifest.root_cid
    )
}

/// `org/name[@revision]` as (id, revision); a folder path is refused.
fn hub_id(reference: &str) -> anyhow::Result<(String, String)> {
    match ipfs_accelerate::ModelRef::hub(reference)? {
        ipfs_accelerate::ModelRef::Hub { id, revision } => Ok((id, revision)),
        _ => anyhow::bail!("'{reference}' is not a model id (org/name[@revision])"),
    }
}

fn pin(
    ctx: &Context,
    loader: &ipfs_accelerate::Loader,
    reference: &str,
    on: bool,
) -> anyhow::Result<()> {
    let store = loader.store();
    let (id, revision) = hub_id(reference)?;
    let Some(manifest) = store.manifest(&id, &revision)? else {
        anyhow::bail!(
            "{id}@{revision} is not in the cache {}",
            store.root().display()
        );
    };
    let was = if on {
        store.pin(&id, &revision)?;
        true
    } else {
        store.unpin(&id, &revision)?
    };
    // The node keeps (or may drop) the snapshot too; only when storage is
    // distributed, and a node failure is reported, not fatal.
    let ipfs_pinned = loader.distributed().map(|client| {
        let result = if on {
            client.pin_add(&manifest.root_cid)
        } else {
            client.pin_rm(&manifest.root_cid)
        };
        match result {
            Ok(()) => on,
            Err(e) => {
                tracing::warn!("IPFS pin change of {} failed: {e}", manifest.root_cid);
                !on
            }
        }
    });
    if ctx.json {
        return print_json(&serde_json::json!({
            "id": id,
            "revision": revision,
            "root_cid": manifest.root_cid,
            "pinned": on,
            "was_pinned": if on { serde_json::Value::Null } else { was.into() },
            "ipfs_pinned": ipfs_pinned,
        }));
    }
    print_text(&format!(
        "{} {id}@{revision}",
        if on { "pinned" } else { "unpinned" }
    ))
}

pub fn run(ctx: &Context, cmd: CacheCommand) -> anyhow::Result<()> {
    let loader = ctx.loader()?;
    let store = loader.store();
    match cmd {
        CacheCommand::Import { dir, id } => {
            if !dir.is_dir() {
                anyhow::bail!("cannot import {}: not a folder", dir.display());
            }
            let ipfs_accelerate::ModelRef::Hub { id, revision } =
                ipfs_accelerate::ModelRef::hub(&id)?
            else {
                anyhow::bail!("'{id}' is not a model id (org/name[@revision])");
            };
            let manifest = store
                .import_dir(&dir, &id, &revision)
                .with_context(|| format!("cannot import {}", dir.display()))?;
            if ctx.json {
                return print_json(&manifest);
            }
            let files = manifest.files.len();
            print_text(&format!("imported {files} files as {}", named(&manifest)))
        }
        CacheCommand::Ls => {
            let scan = store.manifest_scan()?;
            let models: Vec<LsModel> = scan
                .manifests
                .into_iter()
                .map(|m| LsModel {
                    files: m.files.len(),
                    bytes: m.files.iter().map(|f| f.size).sum(),
                    id: m.id,
                    revision: m.revision,
                    root_cid: m.root_cid,
                })
                .collect();
            let stats = store.stats()?;
            if ctx.json {
                return print_json(&serde_json::json!({
                    "models": models,
                    "stats": stats,
                    "unreadable_manifests": scan.unreadable,
                }));
            }
            let mut text = format!("{} ({} models)\n", store.root().display(), models.len());
            for bad in &scan.unreadable {
                text.push_str(&format!(
                    "  unreadable (skipped): {}: {}\n",
                    bad.path, bad.error
                ));
            }
            for m in &models {
                text.push_str(&format!(
                    "  {}@{}  {} files  {} bytes  {}\n",
                    m.id, m.revision, m.files, m.bytes, m.root_cid
                ));
            }
            text.push_str(&format!("stats: {}", serde_json::to_string(&stats)?));
            print_text(&text)
        }
        CacheCommand::Publish { id } => {
            let (id, revision) = hub_id(&id)?;
            let Some(manifest) = store.manifest(&id, &revision)? else {
                anyhow::bail!(
                    "{id}@{revision} is not in the cache {}",
                    store.root().display()
                );
            };
            if !manifest.complete {
                tracing::warn!(
                    "{id}@{revision} holds only the files loaded so far; publishing those"
                );
            }
            let client = loader
                .ipfs()
                .map_err(|why| anyhow::anyhow!("cannot publish: IPFS {why}"))?;
            let root_cid = ipfs_accelerate::storage::ipfs::publish(store, &client, &manifest)
                .with_context(|| format!("cannot publish {id}@{revision}"))?;
            // ONNX graphs exported from this model's files travel with it.
            let mut exports = Vec::new();
            if manifest.id != ipfs_accelerate::export::EXPORT_MANIFEST_ID {
                for export in ipfs_accelerate::export::exports_of(store, &manifest)? {
                    let cid = ipfs_accelerate::storage::ipfs::publish(store, &client, &export)
                        .with_context(|| {
                            format!("cannot publish {}@{}", export.id, export.revision)
                        })?;
                    exports.push(serde_json::json!({
                        "id": export.id,
                        "revision": export.revision,
                        "root_cid": cid,
                    }));
                }
            }
            if ctx.json {
                return print_json(&serde_json::json!({
                    "id": id,
                    "revision": revision,
                    "root_cid": root_cid,
                    "files": manifest.files.len(),
                    "bytes": manifest.total_size(),
                    "ipfs_api": client.api(),
                    "pinned": true,
                    "exports": exports,
                }));
            }
            let mut text = format!("published {id}@{revision} to {}: {root_cid}", client.api());
            for export in &exports {
                text.push_str(&format!(
                    "\n  with its ONNX export {}@{}: {}",
                    export["id"].as_str().unwrap_or_default(),
                    export["revision"].as_str().unwrap_or_default(),
                    export["root_cid"].as_str().unwrap_or_default()
                ));
            }
            print_text(&text)
        }
        CacheCommand::Pull { cid, id } => {
            let cid = cid.trim().trim_start_matches("ipfs://").to_owned();
            if let Err(e) = ipfs_accelerate::storage::unixfs::parse_cid(&cid) {
                anyhow::bail!("'{cid}' is not a CID: {e}");
            }
            let (id, revision) = hub_id(&id)?;
            let client = loader
                .ipfs()
                .map_err(|why| anyhow::anyhow!("cannot pull: IPFS {why}"))?;
            let manifest =
                ipfs_accelerate::storage::ipfs::pull(store, &client, &cid, &id, &revision)
                    .with_context(|| format!("cannot pull {cid}"))?;
            if ctx.json {
                return print_json(&manifest);
            }
            print_text(&format!(
                "pulled {} files ({} bytes) from {} as {}",
                manifest.files.len(),
                manifest.total_size(),
                client.api(),
                named(&manifest)
            ))
        }
        CacheCommand::Pin { id } => pin(ctx, &loader, &id, true),
        CacheCommand::Unpin { id } => pin(ctx, &loader, &id, false),
        CacheCommand::Gc {
            max_bytes,
            keep_recent,
        } => {
            let report = store.gc(max_bytes, std::time::Duration::from_secs(keep_recent))?;
            if ctx.json {
                return print_json(&report);
            }
            let mut text = format!(
                "removed {} models and {} blobs, freed {} bytes; {} bytes kept",
                report.removed_models.len(),
                report.removed_blobs,
                report.freed_bytes,
                report.kept_bytes
            );
            for bad in &report.unreadable_manifests {
                text.push_str(&format!(
                    "\nunreadable manifest (no blob deleted while it is there): {}: {}",
                    bad.path, bad.error
                ));
            }
            print_text(&text)
        }
        CacheCommand::Warm { models, from } => super::warm::run(ctx, &loader, models, from),
        CacheCommand::Verify { strict } => {
            let report = store.verify()?;
            if ctx.json {
                print_json(&report)?;
            } else {
                let mut text = format!(
                    "{} blobs checked: {}\n",
                    report.checked,
                    if report.ok {
                        "all good"
                    } else {
                        "PROBLEMS FOUND"
                    }
                );
                for p in &report.corrupt {
                    text.push_str(&format!("  corrupt: {p}\n"));
                }
                for p in &report.missing {
                    text.push_str(&format!("  missing: {p}\n"));
                }
                for bad in &report.unreadable_manifests {
                    text.push_str(&format!(
                        "  unreadable manifest: {}: {}\n",
                        bad.path, bad.error
                    ));
                }
                if report.removed_temp_files > 0 {
                    text.push_str(&format!(
                        "  removed {} stale temporary files\n",
                        report.removed_temp_files
                    ));
                }
                print_text(text.trim_end())?;
            }
            if strict && !report.ok {
                anyhow::bail!("cache verification failed");
            }
            Ok(())
        }
    }
}
