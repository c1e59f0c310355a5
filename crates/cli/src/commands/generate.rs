//! `generate`: text from a causal language model.

use super::Context;
use crate::output::{print_json, ModelAnswer};
use ipfs_accelerate::skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate::{
    BackendKind, Cancellation, GenerateOptions, Generation, ModelRef, SamplingParams, TextGenerator,
};
use std::io::Write;

/// Decoding options shared by `generate` and `text2text`.
#[derive(Debug, clap::Args)]
pub struct DecodingArgs {
    /// New tokens at most.
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Greedy decoding (the default unless a sampling option is given).
    #[arg(long, conflicts_with_all = ["sample", "temperature", "top_k", "top_p"])]
    pub greedy: bool,
    /// Sample instead of taking the most likely token.
    #[arg(long)]
    pub sample: bool,
    /// Sampling temperature (implies --sample).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Keep the K most likely tokens when sampling (implies --sample).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold (implies --sample).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Seed for sampling: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// transformers' repetition_penalty (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Stop when the text holds this string (repeatable); it is cut off.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Add `last_logits`: the logits at the last prompt position.
    #[arg(long)]
    pub return_logits: bool,
}

impl DecodingArgs {
    /// The options these flags ask for; `--max-new-tokens 0` is refused.
    pub fn options(&self) -> anyhow::Result<GenerateOptions> {
        if self.max_new_tokens == 0 {
            anyhow::bail!("--max-new-tokens must be at least 1");
        }
        // Checked before any model is loaded, so the answer is immediate.
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t > 0.0) {
                anyhow::bail!("--temperature must be a positive number, got {t}");
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                anyhow::bail!("--top-p must be in (0, 1], got {p}");
            }
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            anyhow::bail!(
                "--repetition-penalty must be a positive number, got {}",
                self.repetition_penalty
            );
        }
        let sampling = (self.sample
            || self.temperature.is_some()
            || self.top_k.is_some()
            || self.top_p.is_some())
        .then(|| SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
        });
        Ok(GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling,
            repetition_penalty: self.repetition_penalty,
            stop: self.stop.clone(),
            return_logits: self.return_logits,
            cancel: Cancellation::new(),
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A local folder, a Hub id (org/name[@revision]), ipfs://<cid>, or a
    /// local .gguf file.
    #[arg(long)]
    model: String,
    /// The GGUF file inside the model (folder, Hub repository or CID).
    #[arg(long, value_name = "FILE")]
    gguf: Option<String>,
    /// GGUF only: dequantize the weights to f32 at load and compute in f32
    /// (as transformers does with GGUF files) instead of llama.cpp-style
    /// quantized products; several times the memory, no activation
    /// quantization.
    #[arg(long)]
    dequantize: bool,
    /// Render the prompt as one user message through the model's chat
    /// template (with the assistant's generation prompt).
    #[arg(long)]
    chat: bool,
    /// auto, cpu, cuda, ort, openvino or llamacpp (GGUF models only).
    #[arg(long, default_value = "auto")]
    backend: String,
    #[command(flatten)]
    decoding: DecodingArgs,
    /// The prompt, used exactly as given.
    prompt: String,
}

/// Streams text pieces to stdout unless the answer is JSON.
pub fn streamer(json: bool) -> impl FnMut(&str) {
    move |piece: &str| {
        if !json {
            let mut out = std::io::stdout().lock();
            // A closed stdout is not worth failing generation over.
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
    }
}

/// Ends a streamed answer (newline) or prints the JSON one (the answer of
/// `generate` and `text2text`).
pub fn finish(ctx: &Context, answer: &ModelAnswer<'_, Generation>) -> anyhow::Result<()> {
    if ctx.json {
        return print_json(answer);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out)?;
    Ok(())
}

pub fn run(ctx: &Context, args: GenerateArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    let options = args.decoding.options()?;
    if args.prompt.is_empty() {
        anyhow::bail!("the prompt is empty: pass the text to continue as PROMPT");
    }
    let loader = ctx.loader()?;
    let generator = match gguf::locate(&args.model, args.gguf.as_deref())? {
        Some(gguf) => {
            let compute = if args.dequantize {
                GgufCompute::DequantizedF32
            } else {
                GgufCompute::Quantized
            };
            TextGenerator::load_gguf(&loader, &gguf, backend, compute)?
        }
        None if args.dequantize => {
            anyhow::bail!(
                "--dequantize applies to GGUF models only; '{}' is not one",
                args.model
            )
        }
        None => TextGenerator::load(&loader, &ModelRef::parse(&args.model)?, backend)?,
    };
    let mut on_text = streamer(ctx.json);
    let generation = if args.chat {
        generator.generate_chat(&args.prompt, &options, &mut on_text)?
    } else {
        generator.generate(&args.prompt, &options, &mut on_text)?
    };
    finish(ctx, &ModelAnswer::new(args.model, &generator, generation))
}
