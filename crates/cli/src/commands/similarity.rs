//! `similarity`: how well each text matches an image (CLIP).

use super::Context;
use crate::output::{print_json, print_text};
use ipfs_accelerate::skills::media::read_image;
use ipfs_accelerate::skills::{Media, Similarity, SimilarityModel, SimilarityOptions};
use ipfs_accelerate::{BackendKind, ModelRef, ResolvedFile};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("media").required(true).args(["image", "audio", "video"])))]
pub struct SimilarityArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// auto, cpu, cuda, ort or openvino.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// A PNG or JPEG image (CLIP).
    #[arg(long)]
    image: Option<PathBuf>,
    /// A WAV recording (CLAP; not in this build yet).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// A folder of video frames (X-CLIP; not in this build yet).
    #[arg(long)]
    video: Option<PathBuf>,
    /// Add `preprocessed`: the model input (`pixel_values`) as `{shape, data}`.
    #[arg(long)]
    return_inputs: bool,
    /// Add `outputs`: the normalised `text_embeds` and `image_embeds`.
    #[arg(long)]
    return_embeddings: bool,
    /// The texts to score, each used exactly as given.
    #[arg(required = true)]
    texts: Vec<String>,
}

#[derive(Serialize)]
struct Answer<'a> {
    model: String,
    backend: BackendKind,
    #[serde(flatten)]
    similarity: Similarity,
    files: &'a [ResolvedFile],
}

pub fn run(ctx: &Context, args: SimilarityArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    let image = match (&args.image, &args.audio, &args.video) {
        (Some(path), _, _) => read_image(path)?,
        (None, Some(_), _) => anyhow::bail!(
            "--audio needs a CLAP model, which this build does not run yet; use --image with a CLIP model"
        ),
        _ => anyhow::bail!(
            "--video needs an X-CLIP model, which this build does not run yet; use --image with a CLIP model"
        ),
    };
    let model = ModelRef::parse(&args.model)?;
    let loader = ctx.loader()?;
    let scorer = SimilarityModel::load(&loader, &model, backend)?;
    let options = SimilarityOptions {
        return_inputs: args.return_inputs,
        return_embeddings: args.return_embeddings,
    };
    let similarity = scorer.score(Media::Image(&image), &args.texts, options)?;
    if !ctx.json {
        let lines: Vec<String> = args
            .texts
            .iter()
            .zip(&similarity.probs)
            .map(|(text, p)| format!("{p:.4}  {text}"))
            .collect();
        return print_text(&lines.join("\n"));
    }
    print_json(&Answer {
        model: args.model,
        backend: scorer.backend(),
        similarity,
        files: scorer.files(),
    })
}
