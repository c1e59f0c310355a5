//! `export onnx`: the graph built straight from safetensors + config.json
//! (docs/onnx-export.md).

use super::Context;
use crate::output::{print_json, print_text};
use ipfs_accelerate::export::{export, ExportOptions, ExportSummary};
use serde::Serialize;
use std::path::PathBuf;

/// Export targets.
#[derive(Debug, clap::Subcommand)]
pub enum ExportCommand {
    /// ONNX (opset 17): BERT encoders; GPT-2, OPT and LLaMA decoders with KV
    /// cache; T5 and Whisper (encoder, decoder, decoder with past); wav2vec2;
    /// CLIP; LLaVA / LLaVA-NeXT (vision encoder, embeddings, decoder).
    Onnx(OnnxArgs),
}

#[derive(Debug, clap::Args)]
pub struct OnnxArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// Folder to write model.onnx (or the encoder-decoder files) into
    /// (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Encoders: add the sentence-transformers pooling and normalisation
    /// (output `sentence_embedding`).
    #[arg(long)]
    pooling: bool,
}

#[derive(Serialize)]
struct Answer {
    model: String,
    #[serde(flatten)]
    summary: ExportSummary,
}

pub fn run(ctx: &Context, cmd: ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Onnx(args) = cmd;
    let (model, loader) = ctx.model_and_loader(&args.model)?;
    let options = ExportOptions {
        pooling: args.pooling,
        ..ExportOptions::default()
    };
    let summary = export(&loader, &model, &args.out, &options)?;
    if ctx.json {
        return print_json(&Answer {
            model: args.model,
            summary,
        });
    }
    let names = |specs: &[ipfs_accelerate::export::TensorSpec]| {
        specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    print_text(&format!(
        "{} ({}) -> {} (opset {})\n  inputs:  {}\n  outputs: {}",
        args.model,
        summary.model_type,
        summary.path.display(),
        summary.opset,
        names(&summary.inputs),
        names(&summary.outputs)
    ))
}
