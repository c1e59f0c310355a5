//! `embed`.

use super::Context;
use crate::output::{print_json, print_text};
use ipfs_accelerate::skills::retry_on_cpu_after_oom;
use ipfs_accelerate::{BackendKind, EmbedOptions, ResolvedFile, TextEmbedder};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// auto, cpu, cuda, ort or openvino.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Texts to embed, used exactly as given.
    texts: Vec<String>,
}

#[derive(Serialize)]
struct EmbedAnswer<'a> {
    model: String,
    backend: BackendKind,
    dim: usize,
    embeddings: Vec<Vec<f32>>,
    files: &'a [ResolvedFile],
}

pub fn run(ctx: &Context, args: EmbedArgs) -> anyhow::Result<()> {
    if args.texts.is_empty() {
        anyhow::bail!("no texts given: pass one or more TEXT arguments to embed");
    }
    let backend: BackendKind = args.backend.parse()?;
    let (model, loader) = ctx.model_and_loader(&args.model)?;
    // Load errors already name the model, the file and the places tried.
    let embedder = TextEmbedder::load(&loader, &model, backend)?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let options = EmbedOptions {
        batch_size: args.batch_size.max(1),
        ..EmbedOptions::default()
    };
    let loaded_on = embedder.backend();
    let (embedder, embeddings) = retry_on_cpu_after_oom(
        embedder,
        loaded_on,
        |e| e.embed_with(&texts, options),
        || TextEmbedder::load(&loader, &model, BackendKind::Cpu),
    )?;
    let dim = embeddings.first().map_or(0, Vec::len);
    if ctx.json {
        return print_json(&EmbedAnswer {
            model: args.model,
            backend: embedder.backend(),
            dim,
            embeddings,
            files: embedder.files(),
        });
    }
    let mut text = format!(
        "{} on {} ({dim} dimensions)\n",
        args.model,
        embedder.backend()
    );
    for (t, e) in texts.iter().zip(&embeddings) {
        let head: Vec<String> = e.iter().take(4).map(|x| format!("{x:.6}")).collect();
        text.push_str(&format!("  [{} ...]  {t}\n", head.join(", ")));
    }
    print_text(text.trim_end())
}
