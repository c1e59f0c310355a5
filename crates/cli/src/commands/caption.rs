//! `caption`: text generated about an image by a vision-language model
//! (LLaVA, LLaVA-NeXT).

use super::generate::{streamer, DecodingArgs};
use super::Context;
use crate::output::{print_json, ModelAnswer};
use ipfs_accelerate::skills::media::read_image;
use ipfs_accelerate::skills::{CaptionOptions, ImageCaptioner};
use ipfs_accelerate::BackendKind;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CaptionArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// auto, cpu, cuda, ort or openvino.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// A PNG or JPEG image.
    #[arg(long)]
    image: PathBuf,
    #[command(flatten)]
    decoding: DecodingArgs,
    /// Add `input_ids` (the prompt with the image token expanded) and
    /// `preprocessed.pixel_values`.
    #[arg(long)]
    return_inputs: bool,
    /// The prompt, used exactly as given; it should hold the model's image
    /// token (e.g. `<image>`) where the image goes, and gets `<image>\n` in
    /// front when it holds none.
    prompt: String,
}

pub fn run(ctx: &Context, args: CaptionArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    let options = args.decoding.options()?;
    if args.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty: pass the question or instruction as PROMPT");
    }
    // The image first: a bad file should not wait for a model load.
    let image = read_image(&args.image)?;
    let (model, loader) = ctx.model_and_loader(&args.model)?;
    let captioner = ImageCaptioner::load(&loader, &model, backend)?;
    let caption_options = CaptionOptions {
        return_inputs: args.return_inputs,
    };
    let caption = captioner.caption(
        &image,
        &args.prompt,
        &options,
        caption_options,
        &mut streamer(ctx.json),
    )?;
    if !ctx.json {
        writeln!(std::io::stdout().lock())?;
        return Ok(());
    }
    print_json(&ModelAnswer::new(args.model, &captioner, caption))
}
