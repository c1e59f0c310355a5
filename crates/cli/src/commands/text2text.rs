//! `text2text`: output text from an encoder-decoder model (T5).

use super::generate::{finish, streamer, DecodingArgs};
use super::Context;
use crate::output::ModelAnswer;
use ipfs_accelerate::skills::{retry_on_cpu_after_oom, Text2TextGenerator};
use ipfs_accelerate::BackendKind;

#[derive(Debug, clap::Args)]
pub struct Text2TextArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// auto, cpu, cuda, ort or openvino.
    #[arg(long, default_value = "auto")]
    backend: String,
    #[command(flatten)]
    decoding: DecodingArgs,
    /// The input text, used exactly as given.
    text: String,
}

pub fn run(ctx: &Context, args: Text2TextArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    let options = args.decoding.options()?;
    if args.text.is_empty() {
        anyhow::bail!("the text is empty: pass the input as TEXT");
    }
    let (model, loader) = ctx.model_and_loader(&args.model)?;
    let generator = Text2TextGenerator::load(&loader, &model, backend)?;
    let loaded_on = generator.backend();
    let mut on_text = streamer(ctx.json);
    let (generator, generation) = retry_on_cpu_after_oom(
        generator,
        loaded_on,
        |g| g.generate(&args.text, &options, &mut on_text),
        || Text2TextGenerator::load(&loader, &model, BackendKind::Cpu),
    )?;
    finish(ctx, &ModelAnswer::new(args.model, &generator, generation))
}
