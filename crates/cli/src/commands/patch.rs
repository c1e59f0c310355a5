//! `patch list`: every built-in patch with its kind, target and gate, and
//! whether it applies (to `--model M` when given).

use super::Context;
use crate::output::{print_json, print_text};
use ipfs_accelerate::patches::{catalog, checkpoint, CatalogEntry, ModelView};
use ipfs_accelerate::{FileKind, ModelRef};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum PatchCommand {
    /// List the patches. `applies`: with --model, the patch's version gate
    /// admits the model and its config / tensors hold what it rewrites;
    /// without, config and checkpoint patches are on (not disabled).
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Evaluate `applies` against this model (folder, Hub id or ipfs://<cid>).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Serialize)]
struct ListAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    patches: Vec<CatalogEntry>,
}

/// Where `cargo xtask ipfs-node` installs the test node, from the
/// workspace root: file patches are checked there.
const IPFS_NODE_DIR: &str = "target/ipfs-node";

pub fn run(ctx: &Context, cmd: PatchCommand) -> anyhow::Result<()> {
    let PatchCommand::List(args) = cmd;
    let loader = ctx.loader()?;
    let view = match &args.model {
        Some(m) => Some(model_view(&loader, &ModelRef::parse(m)?)?),
        None => None,
    };
    let patches = catalog(
        view.as_ref(),
        loader.patches_enabled(),
        Path::new(IPFS_NODE_DIR),
        ipfs_accelerate::export::rewrites::infos(),
    );
    if ctx.json {
        return print_json(&ListAnswer {
            model: args.model,
            patches,
        });
    }
    let mut text = String::new();
    for p in &patches {
        text.push_str(&format!(
            "{} {:<45} {:<20} {:<22} {}\n",
            if p.applies { "*" } else { " " },
            p.info.name,
            p.info.kind.name(),
            p.info.gate.to_string(),
            p.info.target
        ));
    }
    text.push_str("(* applies)");
    print_text(&text)
}

/// The model's config and its tensors' names and shapes (headers only).
fn model_view(loader: &ipfs_accelerate::Loader, model: &ModelRef) -> anyhow::Result<ModelView> {
    let config_files = loader.from_pretrained(model, FileKind::Config)?;
    let config: serde_json::Value = loader.read_json(model, &config_files[0])?;
    let mut tensors = checkpoint::Tensors::new();
    for file in loader.from_pretrained(model, FileKind::Weights)? {
        if file.file.ends_with(".safetensors") {
            tensors.extend(checkpoint::read_shapes(&file.path)?);
        }
    }
    Ok(ModelView { config, tensors })
}
