//! `similarity`: how well each text matches an image (CLIP), a recording
//! (CLAP) or a video given as a folder of frames (X-CLIP).

use super::Context;
use crate::output::{print_json, print_text, ModelAnswer};
use ipfs_accelerate::skills::media::{read_audio, read_frames, read_image};
use ipfs_accelerate::skills::{Media, SimilarityModel, SimilarityOptions};
use ipfs_accelerate::BackendKind;
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
    /// A recording (CLAP): WAV, FLAC, MP3, OGG/Vorbis or M4A/AAC.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// A folder of video frames, PNG or JPEG, in file-name order (X-CLIP).
    #[arg(long)]
    video: Option<PathBuf>,
    /// Add `preprocessed`: the model input (`pixel_values` or
    /// `input_features`) as `{shape, data}`.
    #[arg(long)]
    return_inputs: bool,
    /// Add `outputs`: the normalised `text_embeds` and `image_embeds` /
    /// `audio_embeds` / `video_embeds`.
    #[arg(long)]
    return_embeddings: bool,
    /// The texts to score, each used exactly as given.
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn run(ctx: &Context, args: SimilarityArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    // Media first: a bad file is reported before any model is loaded.
    let (image, audio, frames);
    let media = match (&args.image, &args.audio, &args.video) {
        (Some(path), _, _) => {
            image = read_image(path)?;
            Media::Image(&image)
        }
        (None, Some(path), _) => {
            audio = read_audio(path)?;
            Media::Audio(&audio)
        }
        (None, None, Some(dir)) => {
            frames = read_frames(dir)?;
            Media::Video(&frames)
        }
        (None, None, None) => anyhow::bail!("give --image, --audio or --video"),
    };
    let (model, loader) = ctx.model_and_loader(&args.model)?;
    let scorer = SimilarityModel::load(&loader, &model, backend)?;
    let options = SimilarityOptions {
        return_inputs: args.return_inputs,
        return_embeddings: args.return_embeddings,
    };
    let similarity = scorer.score(media, &args.texts, options)?;
    if !ctx.json {
        let lines: Vec<String> = args
            .texts
            .iter()
            .zip(&similarity.probs)
            .map(|(text, p)| format!("{p:.4}  {text}"))
            .collect();
        return print_text(&lines.join("\n"));
    }
    print_json(&ModelAnswer::new(args.model, &scorer, similarity))
}
