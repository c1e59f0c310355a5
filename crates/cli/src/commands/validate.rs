//! `validate`: one model on two backends over the same inputs, with the
//! largest discrepancies and the latencies (what `onnx_diagnostic validate`
//! reports for an exported model against its source). Text models run on
//! texts; speech models on recordings (`--audio`); dual encoders on texts
//! and their media (`--image`, `--audio`, `--video`), comparing logits and
//! embeddings; image-to-text models on images (`--image`) with each text
//! as the prompt, comparing first-step logits.

use super::Context;
use crate::output::{print_json, print_text};
use anyhow::bail;
use anyhow::Context as _;
use ipfs_accelerate::media::{read_audio, Audio};
use ipfs_accelerate::skills::media::{read_frames, read_image, RgbImage};
use ipfs_accelerate::skills::registry::skill_for_model;
use ipfs_accelerate::skills::{
    CaptionOptions, ImageCaptioner, Media, SimilarityModel, SimilarityOptions,
};
use ipfs_accelerate::skills::{SkillKind, SpeechRecognizer, Text2TextGenerator, TranscribeOptions};
use ipfs_accelerate::{BackendKind, GenerateOptions, ModelRef, TextEmbedder, TextGenerator};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Inputs used when the user gives none: short, long and punctuated.
const DEFAULT_TEXTS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Content-addressed storage lets two machines share one model file.",
    "Does ONNX Runtime agree with candle, to the last decimal?",
];

/// The denominator floor of `max_rel`, so values near zero do not dominate.
const REL_FLOOR: f64 = 1e-5;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// The backend under test: auto, cpu, cuda, ort or openvino.
    #[arg(long)]
    backend: String,
    /// The reference backend.
    #[arg(long)]
    against: String,
    /// An input text (repeatable); three fixed sentences when absent.
    #[arg(long = "text", value_name = "TEXT")]
    texts: Vec<String>,
    /// An input recording (repeatable), for a speech model (instead of
    /// texts) or an audio-text model.
    #[arg(long = "audio", value_name = "FILE")]
    audio: Vec<std::path::PathBuf>,
    /// An input image (repeatable), for an image-text or image-to-text
    /// model.
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<std::path::PathBuf>,
    /// An input video, a folder of frames (repeatable), for a video-text
    /// model.
    #[arg(long = "video", value_name = "DIR")]
    videos: Vec<std::path::PathBuf>,
    /// Untimed runs on each backend before timing.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs on each backend; latency is their mean.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

/// The inputs both backends run: texts, and the media the model takes.
struct Inputs<'a> {
    texts: Vec<&'a str>,
    audio: Vec<Audio>,
    images: Vec<RgbImage>,
    videos: Vec<Vec<RgbImage>>,
}

impl Inputs<'_> {
    /// Each media input, as the similarity skill takes it.
    fn media(&self) -> Vec<Media<'_>> {
        let images = self.images.iter().map(Media::Image);
        let audio = self.audio.iter().map(Media::Audio);
        let videos = self.videos.iter().map(|v| Media::Video(v));
        images.chain(audio).chain(videos).collect()
    }
}

/// What is compared: a flat list of values per input set.
trait Runner {
    fn backend(&self) -> BackendKind;
    fn run(&self, inputs: &Inputs<'_>) -> anyhow::Result<Vec<f32>>;
}

struct Embeddings(TextEmbedder);

impl Runner for Embeddings {
    fn backend(&self) -> BackendKind {
        self.0.backend()
    }
    fn run(&self, inputs: &Inputs<'_>) -> anyhow::Result<Vec<f32>> {
        Ok(self.0.embed(&inputs.texts)?.concat())
    }
}

/// A speech model's logits for each recording: Whisper's at the end of
/// the forced prefix (its first step), a CTC model's for every frame.
struct SpeechLogits(SpeechRecognizer);

/// The logits a speech answer holds, by the name the skill gives them.
const SPEECH_LOGITS: [&str; 2] = ["prefix_logits", "logits"];

impl Runner for SpeechLogits {
    fn backend(&self) -> BackendKind {
        self.0.backend()
    }
    fn run(&self, inputs: &Inputs<'_>) -> anyhow::Result<Vec<f32>> {
        let options = TranscribeOptions {
            max_new_tokens: 1,
            return_logits: true,
            ..TranscribeOptions::default()
        };
        let mut out = Vec::new();
        for audio in &inputs.audio {
            let transcription = self.0.transcribe(audio, &options)?;
            let logits = SPEECH_LOGITS
                .iter()
                .find_map(|name| transcription.outputs.get(*name))
                .ok_or_else(|| anyhow::anyhow!("the model returned no logits"))?;
            out.extend_from_slice(&logits.data);
        }
        Ok(out)
    }
}

/// A dual encoder's logits, then its text and media embeddings, for the
/// texts against each media input.
struct Similarities(SimilarityModel);

impl Runner for Similarities {
    fn backend(&self) -> BackendKind {
        self.0.backend()
    }
    fn run(&self, inputs: &Inputs<'_>) -> anyhow::Result<Vec<f32>> {
        let texts: Vec<String> = inputs.texts.iter().map(|t| (*t).to_owned()).collect();
        let options = SimilarityOptions {
            return_inputs: false,
            return_embeddings: true,
        };
        let mut out = Vec::new();
        for media in inputs.media() {
            let scores = self.0.score(media, &texts, options)?;
            out.extend(scores.logits);
            for array in scores.outputs.values() {
                out.extend_from_slice(&array.data);
            }
        }
        Ok(out)
    }
}

/// An image-to-text model's first-step logits for each image with each
/// text as the prompt.
struct CaptionLogits(ImageCaptioner);

impl Runner for CaptionLogits {
    fn backend(&self) -> BackendKind {
        self.0.backend()
    }
    fn run(&self, inputs: &Inputs<'_>) -> anyhow::Result<Vec<f32>> {
        let options = first_logits(&GenerateOptions::default());
        let mut out = Vec::new();
        for image in &inputs.images {
            for text in &inputs.texts {
                let caption = self.0.caption(
                    image,
                    text,
                    &options,
                    CaptionOptions::default(),
                    &mut |_| {},
                )?;
                out.extend(caption.generation.last_logits.unwrap_or_default());
            }
        }
        Ok(out)
    }
}

/// First-step logits of each text as a prompt (no sampling involved).
fn first_logits(options: &GenerateOptions) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: 1,
        return_logits: true,
        ..options.clone()
    }
}

/// A generator whose first-step logits are compared: the decoder-only and
/// the encoder-decoder kinds are run the same way.
enum Logits {
    Causal(TextGenerator),
    Seq2Seq(Text2TextGenerator),
}

impl Runner for Logits {
    fn backend(&self) -> BackendKind {
        match self {
            Self::Causal(generator) => generator.backend(),
            Self::Seq2Seq(generator) => generator.backend(),
        }
    }
    fn run(&self, inputs: &Inputs<'_>) -> anyhow::Result<Vec<f32>> {
        let options = first_logits(&GenerateOptions::default());
        let mut out = Vec::new();
        for text in &inputs.texts {
            let generation = match self {
                Self::Causal(generator) => generator.generate(text, &options, &mut |_| {})?,
                Self::Seq2Seq(generator) => generator.generate(text, &options, &mut |_| {})?,
            };
            out.extend(generation.last_logits.unwrap_or_default());
        }
        Ok(out)
    }
}

#[derive(Serialize)]
struct Answer {
    model: String,
    /// The backends that really ran (after any `auto` fallback).
    backend: BackendKind,
    against: BackendKind,
    /// What was compared.
    compared: &'static str,
    inputs: usize,
    max_abs: f64,
    max_rel: f64,
    n: usize,
    nan: usize,
    latency_ms: BTreeMap<String, f64>,
    warmup: usize,
    repeat: usize,
}

fn load(
    ctx: &Context,
    model: &ModelRef,
    skill: SkillKind,
    backend: BackendKind,
) -> anyhow::Result<Box<dyn Runner>> {
    let loader = ctx.loader()?;
    Ok(match skill {
        SkillKind::TextEmbedding => {
            Box::new(Embeddings(TextEmbedder::load(&loader, model, backend)?))
        }
        SkillKind::TextGeneration => Box::new(Logits::Causal(TextGenerator::load(
            &loader, model, backend,
        )?)),
        SkillKind::Text2Text => Box::new(Logits::Seq2Seq(Text2TextGenerator::load(
            &loader, model, backend,
        )?)),
        SkillKind::SpeechRecognition => Box::new(SpeechLogits(SpeechRecognizer::load(
            &loader, model, backend,
        )?)),
        SkillKind::Similarity => Box::new(Similarities(SimilarityModel::load(
            &loader, model, backend,
        )?)),
        SkillKind::ImageToText => Box::new(CaptionLogits(ImageCaptioner::load(
            &loader, model, backend,
        )?)),
    })
}

/// Whether `model` is a CTC speech model (its logits are per frame).
fn is_ctc(loader: &ipfs_accelerate::Loader, model: &ModelRef) -> bool {
    let Ok(config) = loader.file(model, "config.json") else {
        return false;
    };
    loader
        .read_json::<serde_json::Value>(model, &config)
        .ok()
        .and_then(|c| c["model_type"].as_str().map(|t| t != "whisper"))
        .unwrap_or(false)
}

/// Mean milliseconds of `repeat` (≥ 1) runs after `warmup` untimed ones,
/// and the output of the last run.
fn timed(
    runner: &dyn Runner,
    inputs: &Inputs<'_>,
    warmup: usize,
    repeat: usize,
) -> anyhow::Result<(Vec<f32>, f64)> {
    for _ in 0..warmup {
        runner.run(inputs)?;
    }
    let start = Instant::now();
    let mut output = Vec::new();
    for _ in 0..repeat {
        output = runner.run(inputs)?;
    }
    Ok((output, start.elapsed().as_secs_f64() * 1e3 / repeat as f64))
}

/// `(max_abs, max_rel, nan)` of `got` against `want`: NaN in either is
/// counted and left out of the maxima.
fn discrepancy(got: &[f32], want: &[f32]) -> (f64, f64, usize) {
    let (mut max_abs, mut max_rel, mut nan) = (0f64, 0f64, 0usize);
    for (&a, &b) in got.iter().zip(want) {
        if a.is_nan() || b.is_nan() {
            nan += 1;
            continue;
        }
        let diff = (f64::from(a) - f64::from(b)).abs();
        max_abs = max_abs.max(diff);
        max_rel = max_rel.max(diff / (f64::from(b).abs() + REL_FLOOR));
    }
    (max_abs, max_rel, nan)
}

/// Refuses media flags `skill` does not take, and a run without the media
/// it needs.
fn check_media(args: &ValidateArgs, skill: SkillKind) -> anyhow::Result<()> {
    match skill {
        SkillKind::SpeechRecognition => {
            if args.audio.is_empty() {
                bail!("validate runs a speech model on recordings: give --audio FILE");
            }
            if !args.images.is_empty() || !args.videos.is_empty() {
                bail!("a speech model takes --audio only");
            }
        }
        SkillKind::Similarity => {
            if args.audio.is_empty() && args.images.is_empty() && args.videos.is_empty() {
                bail!(
                    "validate compares a similarity model's texts with media: give --image FILE, --audio FILE or --video DIR"
                );
            }
        }
        SkillKind::ImageToText => {
            if args.images.is_empty() {
                bail!("validate runs an image-to-text model on images: give --image FILE");
            }
            if !args.audio.is_empty() || !args.videos.is_empty() {
                bail!("an image-to-text model takes --image only");
            }
        }
        _ => {
            if !args.audio.is_empty() {
                bail!(
                    "--audio is for speech models; '{}' is a {} model",
                    args.model,
                    skill.name()
                );
            }
            if !args.images.is_empty() || !args.videos.is_empty() {
                bail!(
                    "--image and --video are for similarity and image-to-text models; '{}' is a {} model",
                    args.model,
                    skill.name()
                );
            }
        }
    }
    Ok(())
}

pub fn run(ctx: &Context, args: ValidateArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    let against: BackendKind = args.against.parse()?;
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if args.texts.iter().any(|t| t.is_empty()) {
        bail!("--text must not be empty");
    }
    let texts: Vec<&str> = if args.texts.is_empty() {
        DEFAULT_TEXTS.to_vec()
    } else {
        args.texts.iter().map(String::as_str).collect()
    };
    let model = ModelRef::parse(&args.model)?;
    let skill = skill_for_model(&ctx.loader()?, &model)?;
    let speech = skill == SkillKind::SpeechRecognition;
    check_media(&args, skill)?;
    let audio = args
        .audio
        .iter()
        .map(|path| read_audio(path).with_context(|| format!("cannot read {}", path.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let images = args
        .images
        .iter()
        .map(|path| read_image(path).with_context(|| format!("cannot read {}", path.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let videos = args
        .videos
        .iter()
        .map(|dir| read_frames(dir).with_context(|| format!("cannot read {}", dir.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs = Inputs {
        texts,
        audio,
        images,
        videos,
    };
    let media_inputs = inputs.media().len();
    // One backend at a time: two large models need not fit together.
    let (tested, tested_kind, tested_ms) = {
        let runner = load(ctx, &model, skill, backend)?;
        let (out, ms) = timed(runner.as_ref(), &inputs, args.warmup, args.repeat)?;
        (out, runner.backend(), ms)
    };
    let (reference, reference_kind, reference_ms) = {
        let runner = load(ctx, &model, skill, against)?;
        let (out, ms) = timed(runner.as_ref(), &inputs, args.warmup, args.repeat)?;
        (out, runner.backend(), ms)
    };
    if tested.len() != reference.len() {
        bail!(
            "the backends give outputs of different sizes ({} and {} values)",
            tested.len(),
            reference.len()
        );
    }
    let (max_abs, max_rel, nan) = discrepancy(&tested, &reference);
    let mut latency_ms = BTreeMap::new();
    latency_ms.insert(args.backend.clone(), tested_ms);
    let against_key = if args.against == args.backend {
        format!("{} (against)", args.against)
    } else {
        args.against.clone()
    };
    latency_ms.insert(against_key, reference_ms);
    let answer = Answer {
        model: args.model,
        backend: tested_kind,
        against: reference_kind,
        compared: match skill {
            SkillKind::TextEmbedding => "embeddings",
            SkillKind::Similarity => "logits and embeddings",
            // A CTC model's logits are per frame; Whisper's at its prefix.
            SkillKind::SpeechRecognition if is_ctc(&ctx.loader()?, &model) => "CTC logits",
            _ => "first-step logits",
        },
        inputs: match skill {
            _ if speech => inputs.audio.len(),
            SkillKind::Similarity => media_inputs,
            // Each image with each text as its prompt.
            SkillKind::ImageToText => media_inputs * inputs.texts.len(),
            _ => inputs.texts.len(),
        },
        max_abs,
        max_rel,
        n: tested.len(),
        nan,
        latency_ms,
        warmup: args.warmup,
        repeat: args.repeat,
    };
    if ctx.json {
        return print_json(&answer);
    }
    print_text(&format!(
        "{} vs {}: max_abs {:.3e}, max_rel {:.3e} over {} values ({} NaN); {:.2} ms vs {:.2} ms",
        answer.backend, answer.against, max_abs, max_rel, answer.n, nan, tested_ms, reference_ms
    ))
}

#[cfg(test)]
mod tests {
    use super::discrepancy;

    #[test]
    fn discrepancy_counts_nan_and_floors_the_denominator() {
        let (abs, rel, nan) = discrepancy(&[1.0, 0.0, f32::NAN, 2.5], &[1.5, 0.0, 1.0, 2.0]);
        assert_eq!(nan, 1);
        assert!((abs - 0.5).abs() < 1e-12);
        assert!((rel - 0.5 / (1.5 + 1e-5)).abs() < 1e-9);
    }
}
