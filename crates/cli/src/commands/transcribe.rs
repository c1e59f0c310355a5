//! `transcribe`: text from an audio file with a speech-recognition model
//! (Whisper, wav2vec2 CTC).

use super::Context;
use crate::output::{print_json, print_text, ModelAnswer};
use ipfs_accelerate::skills::media::AudioFile;
use ipfs_accelerate::skills::{
    retry_on_cpu_after_oom, subtitles, SpeechRecognizer, TranscribeOptions,
};
use ipfs_accelerate::BackendKind;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TranscribeArgs {
    /// A local folder, a Hub id (org/name[@revision]) or ipfs://<cid>.
    #[arg(long)]
    model: String,
    /// auto, cpu, cuda, ort or openvino.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Whisper: new tokens at most after the forced prefix, per 30 s window
    /// (wav2vec2 ignores it: CTC emits one label per frame).
    #[arg(long, default_value_t = TranscribeOptions::DEFAULT_MAX_NEW_TOKENS)]
    max_new_tokens: usize,
    /// Greedy decoding (the only decoding transcribe does; accepted for
    /// symmetry with generate).
    #[arg(long)]
    greedy: bool,
    /// Add `preprocessed`: the model input (`input_features` or
    /// `input_values`) as `{shape, data}`.
    #[arg(long)]
    return_inputs: bool,
    /// Add `outputs`: the raw logits (Whisper: at the last prefix position,
    /// before token suppression; wav2vec2: every frame).
    #[arg(long)]
    return_logits: bool,
    /// Whisper: the spoken language as a code (`en`, `fr`, ...) instead of
    /// the model's default (detected when it is multilingual).
    #[arg(long)]
    language: Option<String>,
    /// Whisper: `transcribe` or `translate` (into English) instead of the
    /// model's default task.
    #[arg(long, value_parser = ["transcribe", "translate"])]
    task: Option<String>,
    /// Timestamps in the JSON answer: Whisper's segments (`segments`, as
    /// `generate(return_timestamps=True)`; audio over 30 s always has
    /// them), wav2vec2's words (`words`, as transformers' pipeline gives
    /// them).
    #[arg(long)]
    timestamps: bool,
    /// How to print the answer: `json` (as --json), `text`, or subtitles,
    /// `srt` or `vtt` (one cue per segment, or per word for wav2vec2;
    /// implies --timestamps). Default: json with --json, else text.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Decode the audio in chunks of this many seconds, joined as
    /// transformers' ASR pipeline joins them (`chunk_length_s`; Whisper:
    /// at most 30). Default: Whisper decodes any length with its
    /// sequential long-form algorithm; wav2vec2 takes up to 60 s whole and
    /// longer audio in 30 s chunks.
    #[arg(long)]
    chunk_length: Option<f64>,
    /// With chunks: the overlap on each side, in seconds (default: a
    /// sixth of the chunk).
    #[arg(long, requires = "chunk_length")]
    stride_length: Option<f64>,
    /// The recording: WAV (PCM 8/16/24/32-bit or float), FLAC, MP3,
    /// OGG/Vorbis or M4A/AAC; any rate, any
    /// number of channels (mixed down to mono, resampled to the model's rate).
    audio: PathBuf,
}

/// How `transcribe` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Json,
    Text,
    Srt,
    Vtt,
}

pub fn run(ctx: &Context, args: TranscribeArgs) -> anyhow::Result<()> {
    let format = args
        .format
        .unwrap_or(if ctx.json { Format::Json } else { Format::Text });
    let backend: BackendKind = args.backend.parse()?;
    if args.max_new_tokens == 0 {
        anyhow::bail!("--max-new-tokens must be at least 1");
    }
    // Open the audio first: a bad file should not wait for a model load.
    // The file is decoded as it is needed (twice, for Whisper's long-form
    // features), never held whole; opening it decodes its first block.
    let audio = AudioFile::open(&args.audio)?;
    let (model, loader) = ctx.model_and_loader(&args.model)?;
    let recognizer = SpeechRecognizer::load(&loader, &model, backend)?;
    let options = TranscribeOptions {
        max_new_tokens: args.max_new_tokens,
        return_inputs: args.return_inputs,
        return_logits: args.return_logits,
        language: args.language,
        task: args.task,
        timestamps: args.timestamps || matches!(format, Format::Srt | Format::Vtt),
        chunk_length_s: args.chunk_length,
        stride_length_s: args.stride_length,
    };
    let loaded_on = recognizer.backend();
    let (recognizer, transcription) = retry_on_cpu_after_oom(
        recognizer,
        loaded_on,
        |r| r.transcribe_source(&audio, &options),
        || SpeechRecognizer::load(&loader, &model, BackendKind::Cpu),
    )?;
    match format {
        Format::Text => print_text(&transcription.text),
        Format::Json => print_json(&ModelAnswer::new(args.model, &recognizer, transcription)),
        Format::Srt => print_subtitles(&subtitles::srt(&transcription.cues())),
        Format::Vtt => print_subtitles(&subtitles::vtt(&transcription.cues())),
    }
}

fn print_subtitles(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(())
}
