//! `cache warm`: fetch models into the cache ahead of use, through the
//! same layers a load uses (our cache, Hub cache, IPFS, Hub).

use super::Context;
use crate::output::{print_json, print_text};
use anyhow::Context as _;
use ipfs_accelerate::{FileKind, LoadError, Loader, ModelRef};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Serialize)]
struct Warmed {
    model: String,
    files: usize,
    /// How many files each layer served.
    sources: BTreeMap<String, usize>,
}

/// Models from the arguments and the `--from` file (one per line, `#`
/// starts a comment), in order, without repeats.
fn model_list(models: Vec<String>, from: Option<PathBuf>) -> anyhow::Result<Vec<String>> {
    let mut all = models;
    if let Some(file) = from {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read the model list {}", file.display()))?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if !line.is_empty() {
                all.push(line.to_owned());
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|m| seen.insert(m.clone()));
    if all.is_empty() {
        anyhow::bail!("no models given: pass model ids or --from FILE");
    }
    Ok(all)
}

/// Every Auto* kind's files that exist; the config is required.
fn warm_one(loader: &Loader, reference: &str) -> anyhow::Result<Warmed> {
    let model = ModelRef::parse(reference)?;
    let mut files = BTreeMap::new();
    for kind in FileKind::ALL {
        match loader.from_pretrained(&model, kind) {
            Ok(found) => {
                for f in found {
                    files.insert(f.file.clone(), f.source);
                }
            }
            Err(LoadError::NotFound { .. }) if kind != FileKind::Config => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut sources = BTreeMap::new();
    for source in files.values() {
        *sources.entry(source.to_string()).or_insert(0) += 1;
    }
    Ok(Warmed {
        model: reference.to_owned(),
        files: files.len(),
        sources,
    })
}

pub fn run(
    ctx: &Context,
    loader: &Loader,
    models: Vec<String>,
    from: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut warmed = Vec::new();
    for reference in model_list(models, from)? {
        let done =
            warm_one(loader, &reference).with_context(|| format!("cannot warm {reference}"))?;
        tracing::info!(model = %reference, files = done.files, "warmed");
        warmed.push(done);
    }
    if ctx.json {
        return print_json(&serde_json::json!({ "models": warmed }));
    }
    let mut text = String::new();
    for w in &warmed {
        text.push_str(&format!(
            "{}: {} files {}\n",
            w.model,
            w.files,
            serde_json::to_string(&w.sources)?
        ));
    }
    print_text(text.trim_end())
}
