//! `cache import | ls | verify`.

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
            print_text(&format!(
                "imported {} files as {}@{} (root {})",
                manifest.files.len(),
                manifest.id,
                manifest.revision,
                manifest.root_cid
            ))
        }
        CacheCommand::Ls => {
            let models: Vec<LsModel> = store
                .manifests()?
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
                return print_json(&serde_json::json!({ "models": models, "stats": stats }));
            }
            let mut text = format!("{} ({} models)\n", store.root().display(), models.len());
            for m in &models {
                text.push_str(&format!(
                    "  {}@{}  {} files  {} bytes  {}\n",
                    m.id, m.revision, m.files, m.bytes, m.root_cid
                ));
            }
            text.push_str(&format!("stats: {}", serde_json::to_string(&stats)?));
            print_text(&text)
        }
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
                print_text(text.trim_end())?;
            }
            if strict && !report.ok {
                anyhow::bail!("cache verification failed");
            }
            Ok(())
        }
    }
}
