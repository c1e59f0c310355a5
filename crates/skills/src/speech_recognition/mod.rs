//! Speech recognition: Whisper (log-mel front end, forced decoder prefix,
//! greedy decoding through the shared token loop) and wav2vec2 (normalised
//! waveform, CTC greedy decoding; on candle, or on ONNX Runtime / OpenVINO
//! when the model ships `onnx/model.onnx`).

mod ctc;
mod long_form;
mod onnx_ctc;
pub mod subtitles;
mod whisper_chunked;
mod whisper_model;

pub use long_form::TimedSegment;

use crate::array::Array;
use crate::families::Task;
use crate::load::backend_chain::load_on_chain_with_onnx;
use crate::load::graph_or_weights::load_graph_or_weights;
use crate::load::weights::{malformed, var_builder};
use crate::load::{model_error, skill_api, Loaded, ModelFiles};
use crate::onnx_seq2seq::{open_seq2seq, seq2seq_graphs};
use crate::text_generation::decode_loop::{self, LoopInputs};
use crate::text_generation::{generation_config, GenerateOptions};
use crate::{SkillError, SkillKind};
use candle_core::{DType, Device, Tensor};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::FileKind;
use ipfs_accelerate_media::preprocess::log_mel::{LogMel, LogMelConfig};
use ipfs_accelerate_media::preprocess::waveform::{self, WaveformConfig};
use ipfs_accelerate_media::{stream_at, Audio, AudioSource};
use ipfs_accelerate_models::{wav2vec2, whisper, ModelError};
use onnx_ctc::OnnxCtc;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tokenizers::Tokenizer;
use whisper_model::WhisperModel;

/// What a transcription request asks for.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// Whisper: new tokens at most after the forced prefix.
    pub max_new_tokens: usize,
    /// Add the preprocessed model input (`input_features` / `input_values`).
    pub return_inputs: bool,
    /// Add the raw logits (Whisper: at the last prefix position, before
    /// suppression; wav2vec2: every frame).
    pub return_logits: bool,
    /// Whisper: the spoken language as a code (`en`, `fr`, ...), forced
    /// instead of the generation config's or the detected one. `None`: as
    /// the model's generation config says (detected when multilingual).
    pub language: Option<String>,
    /// Whisper: `transcribe` (in the spoken language) or `translate` (into
    /// English), as `generate(task=...)`; `None`: the generation config's.
    pub task: Option<String>,
    /// Whisper: decode with timestamp tokens and give the segments
    /// (`segments`), as `generate(return_timestamps=True)`; audio longer
    /// than 30 s always is. wav2vec2: add each word's start and end time
    /// (`words`), from the CTC frames, as the ASR pipeline's
    /// `return_timestamps="word"`.
    pub timestamps: bool,
    /// Cut the audio into chunks of this many seconds, decoded apart with
    /// `stride_length_s` of overlap on each side and joined, as the ASR
    /// pipeline's `chunk_length_s`. `None`: Whisper decodes any length
    /// with its sequential long-form algorithm; wav2vec2 takes the whole
    /// recording at once up to [`MAX_CTC_SECONDS`], 30 s chunks beyond.
    pub chunk_length_s: Option<f64>,
    /// With chunks: the overlap on each side, in seconds (`None`: a sixth
    /// of the chunk, as the pipeline).
    pub stride_length_s: Option<f64>,
}

impl TranscribeOptions {
    /// New tokens at most when a request names no limit (the CLI's
    /// `--max-new-tokens` default and the server's, which OpenAI's
    /// transcription API gives no field for).
    pub const DEFAULT_MAX_NEW_TOKENS: usize = 128;
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: Self::DEFAULT_MAX_NEW_TOKENS,
            return_inputs: false,
            return_logits: false,
            language: None,
            task: None,
            timestamps: false,
            chunk_length_s: None,
            stride_length_s: None,
        }
    }
}

/// A transcription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcription {
    /// The text (Whisper: special tokens skipped; wav2vec2: as the ASR
    /// pipeline decodes CTC output, special tokens other than the blank kept).
    pub text: String,
    /// Whisper: generated ids after the forced prefix (EOS included when
    /// produced); wav2vec2: empty (CTC has no generated ids).
    pub token_ids: Vec<u32>,
    /// Whisper: the forced decoder prefix used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decoder_prefix: Vec<u32>,
    /// Whisper: the language it transcribed, as a code (`en`, ...): the
    /// language token of the prefix, or `en` for an English-only model.
    /// wav2vec2: unknown (`None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// wav2vec2 with `timestamps`: each word and when it is said.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<TimedWord>,
    /// Whisper with timestamps (and all audio over 30 s): the segments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<TimedSegment>,
    /// wav2vec2: the per-frame argmax ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frame_ids: Vec<u32>,
    /// Preprocessed inputs, when asked.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub preprocessed: BTreeMap<String, Array>,
    /// Raw outputs, when asked.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Array>,
}

/// A word and its time in the recording, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedWord {
    /// The word (special tokens beside it included, as transformers gives it).
    pub word: String,
    /// When it starts.
    pub start: f64,
    /// When it ends.
    pub end: f64,
}

#[derive(Debug)]
struct WhisperRunner {
    model: WhisperModel,
    // Shared so that a recording's long-form features can borrow it while
    // the runner decodes.
    front: Arc<LogMel>,
    tokenizer: Tokenizer,
    generation: Value,
    decoder_start: u32,
    suppress: Vec<u32>,
    begin_suppress: Vec<u32>,
    eos_ids: Vec<u32>,
    /// `None` for a generation config without timestamp tokens.
    timestamps: Option<long_form::TimestampRules>,
    /// The tokenizer's `all_special_ids` (the chunked pipeline's merge
    /// skips them).
    special_ids: HashSet<u32>,
}

/// The CTC acoustic model, on the backend that loaded it.
#[derive(Debug)]
enum CtcModel {
    Candle(Box<wav2vec2::Wav2Vec2ForCtc>),
    Onnx(OnnxCtc),
}

#[derive(Debug)]
struct Wav2Vec2Runner {
    model: CtcModel,
    config: wav2vec2::Wav2Vec2Config,
    front: WaveformConfig,
    vocab: ctc::CtcVocab,
}

#[derive(Debug)]
enum Runner {
    Whisper(Box<WhisperRunner>),
    Wav2Vec2(Box<Wav2Vec2Runner>),
}

/// A loaded speech-recognition model.
#[derive(Debug)]
pub struct SpeechRecognizer {
    loaded: Loaded,
    runner: Mutex<Runner>,
    device: Device,
    sampling_rate: u32,
}

/// How a speech family decodes: its row in the family table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// An encoder-decoder generating tokens (Whisper).
    Whisper,
    /// An acoustic model with a CTC head (wav2vec2).
    Ctc,
}

impl Family {
    /// How it decodes, as `status --json` says it.
    pub(crate) fn decoding(self) -> &'static str {
        match self {
            Self::Whisper => "generate",
            Self::Ctc => "ctc",
        }
    }
}

fn id_list(value: Option<&Value>) -> Vec<u32> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|v| v as u32)
                .collect()
        })
        .unwrap_or_default()
}

skill_api!(
    SpeechRecognizer,
    SkillKind::SpeechRecognition,
    "a speech-recognition model"
);

impl SpeechRecognizer {
    /// The network and everything the task needs besides the opened
    /// files, on the first backend of the chain for `backend` that can hold
    /// it.
    fn from_files(mut files: ModelFiles<'_>, backend: BackendKind) -> Result<Self, SkillError> {
        let loader = files.loader;
        let Task::SpeechRecognition(family) = files.family.task else {
            return Err(files.wrong_task());
        };
        let front_config: Value = files.json(FileKind::FeatureExtractor)?;
        let (name, config) = (files.name.clone(), files.config.clone());
        let (runner, device, kind, sampling_rate) = if family == Family::Whisper {
            let cfg: whisper::WhisperConfig = files.parse()?;
            let weight_files = files.weight_files()?;
            let front_cfg: LogMelConfig = serde_json::from_value(front_config)
                .map_err(|e| malformed(&name, "preprocessor_config.json", e))?;
            if front_cfg.feature_size != cfg.num_mel_bins {
                return Err(malformed(
                    &name,
                    "preprocessor_config.json",
                    format!(
                        "feature_size {} differs from the model's num_mel_bins {}",
                        front_cfg.feature_size, cfg.num_mel_bins
                    ),
                ));
            }
            let rate = front_cfg.sampling_rate;
            let front = LogMel::new(front_cfg)
                .map_err(|e| malformed(&name, "preprocessor_config.json", e))?;
            let generation = files.generation_config()?.unwrap_or(Value::Null);
            let decoder_start = generation_config::decoder_start_id(&config, Some(&generation))
                .ok_or_else(|| malformed(&name, "config.json", "no decoder_start_token_id"))?;
            let tokenizer = files.tokenizer()?;
            let special_ids = whisper_chunked::special_ids(
                &tokenizer,
                files.optional_json("special_tokens_map.json")?.as_ref(),
                files.optional_json("tokenizer_config.json")?.as_ref(),
            );
            let pick = |key: &str| {
                generation
                    .get(key)
                    .filter(|v| !v.is_null())
                    .or_else(|| config.get(key))
                    .cloned()
            };
            let suppress = id_list(pick("suppress_tokens").as_ref());
            let begin_suppress = id_list(pick("begin_suppress_tokens").as_ref());
            let eos_ids = generation_config::eos_ids(&config, Some(&generation));
            let graphs = seq2seq_graphs(loader, files.model, backend, &mut files.files)?;
            let ((model, device), kind) = load_on_chain_with_onnx(
                backend,
                graphs.is_some(),
                |executor| {
                    let model = open_seq2seq(executor, graphs.as_deref(), &["input_features"])?;
                    let model = WhisperModel::Onnx {
                        model: Box::new(model),
                        seen: 0,
                        max_positions: cfg.max_target_positions,
                    };
                    Ok((model, Device::Cpu))
                },
                |device| {
                    let vb =
                        var_builder(loader, &name, &config, &weight_files, DType::F32, device)?;
                    let model = whisper::Whisper::load(vb, &cfg)
                        .map_err(|e| model_error(&name, ModelError::Tensor(e)))?;
                    Ok((WhisperModel::Candle(Box::new(model)), device.clone()))
                },
            )?;
            let timestamps =
                long_form::TimestampRules::from_generation_config(&generation, &eos_ids);
            let runner = Runner::Whisper(Box::new(WhisperRunner {
                model,
                front: Arc::new(front),
                timestamps,
                special_ids,
                tokenizer,
                generation,
                decoder_start,
                suppress,
                begin_suppress,
                eos_ids,
            }));
            (runner, device, kind, rate)
        } else {
            let cfg: wav2vec2::Wav2Vec2Config = files.parse()?;
            cfg.check().map_err(|e| files.model_error(e))?;
            let front: WaveformConfig = serde_json::from_value(front_config)
                .map_err(|e| malformed(&name, "preprocessor_config.json", e))?;
            let vocab_json = files.required_json("vocab.json")?;
            let tokenizer_config = files.optional_json("tokenizer_config.json")?;
            let special_tokens_map = files.optional_json("special_tokens_map.json")?;
            let added_tokens = files.optional_json("added_tokens.json")?;
            let ctc_files = ctc::CtcFiles {
                vocab: &vocab_json,
                tokenizer_config: tokenizer_config.as_ref(),
                special_tokens_map: special_tokens_map.as_ref(),
                added_tokens: added_tokens.as_ref(),
            };
            let vocab = ctc::CtcVocab::new(ctc_files, cfg.vocab_size)
                .map_err(|e| malformed(&name, "vocab.json", e))?;
            let ((model, device), kind, loaded_files) = load_graph_or_weights(
                &files,
                backend,
                |session| Ok((CtcModel::Onnx(OnnxCtc::new(session)?), Device::Cpu)),
                |vb, device| {
                    let ctc = wav2vec2::Wav2Vec2ForCtc::load(vb, &cfg)
                        .map_err(|e| model_error(&name, ModelError::Tensor(e)))?;
                    Ok((CtcModel::Candle(Box::new(ctc)), device.clone()))
                },
            )?;
            files.files.extend(loaded_files);
            let rate = front.sampling_rate;
            let runner = Runner::Wav2Vec2(Box::new(Wav2Vec2Runner {
                model,
                config: cfg,
                front,
                vocab,
            }));
            (runner, device, kind, rate)
        };
        Ok(Self {
            runner: Mutex::new(runner),
            device,
            sampling_rate,
            loaded: files.finish(kind),
        })
    }

    /// The sample rate the model expects (audio is resampled to it).
    pub fn sampling_rate(&self) -> u32 {
        self.sampling_rate
    }

    /// Transcribes `audio` (any rate: resampled to the model's).
    pub fn transcribe(
        &self,
        audio: &Audio,
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        if audio.samples.is_empty() {
            return Err(SkillError::InvalidInput(
                "the audio holds no samples".to_owned(),
            ));
        }
        self.transcribe_source(audio, options)
    }

    /// Transcribes a recording read as a stream (a file on disk, decoded
    /// as needed): Whisper's long-form decoding goes through it twice and
    /// never holds it whole; the other paths (CTC models, chunks) read it
    /// into memory at the model's rate.
    pub fn transcribe_source(
        &self,
        source: &dyn AudioSource,
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        if options.stride_length_s.is_some() && options.chunk_length_s.is_none() {
            return Err(SkillError::InvalidInput(
                "stride_length_s is the overlap of chunks; it needs chunk_length_s".to_owned(),
            ));
        }
        let mut runner = self.runner.lock().map_err(|_| {
            SkillError::InvalidInput("the model is unusable after an earlier failure".to_owned())
        })?;
        match &mut *runner {
            Runner::Whisper(w) => {
                let result = w.transcribe(&self.loaded.name, &self.device, source, options);
                w.model.release();
                result
            }
            Runner::Wav2Vec2(w) => {
                let samples = samples_at(source, self.sampling_rate)?;
                w.transcribe(&self.device, &samples, options)
            }
        }
    }
}

/// All of `source` at `rate`, in memory: borrowed when it is already
/// there at that rate.
fn samples_at(source: &dyn AudioSource, rate: u32) -> Result<Cow<'_, [f32]>, SkillError> {
    if let Some((samples, at)) = source.in_memory() {
        if at == rate && !samples.is_empty() {
            return Ok(Cow::Borrowed(samples));
        }
    }
    let mut samples = Vec::new();
    stream_at(source, rate, &mut |block| {
        samples.extend_from_slice(block);
        Ok(())
    })
    .map_err(|why| SkillError::InvalidInput(format!("{}: {why}", source.name())))?;
    Ok(Cow::Owned(samples))
}

/// One chunk of the ASR pipeline's `chunk_iter`: samples `start .. end`,
/// and how many of them at each side are overlap its neighbours decode.
struct ChunkSpan {
    start: usize,
    end: usize,
    left: usize,
    right: usize,
}

/// `chunk_iter` over `len` samples: chunks of `chunk_len` every
/// `chunk_len - 2 × stride` samples (callers check that this is positive),
/// the first without a left overlap and the last without a right one; a
/// chunk no longer than its left overlap is skipped.
fn pipeline_chunks(len: usize, chunk_len: usize, stride: usize) -> Vec<ChunkSpan> {
    let step = chunk_len - 2 * stride;
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < len {
        let end = (start + chunk_len).min(len);
        let left = if start == 0 { 0 } else { stride };
        let is_last = start + chunk_len >= len;
        let right = if is_last { 0 } else { stride };
        if end - start > left {
            chunks.push(ChunkSpan {
                start,
                end,
                left,
                right,
            });
        }
        if is_last {
            break;
        }
        start += step;
    }
    chunks
}

impl WhisperRunner {
    /// `transformers`' init tokens: the decoder start, the forced ids of the
    /// generation config in position order, the detected language when the
    /// model is multilingual and none is forced, then `<|notimestamps|>`
    /// unless decoding with `timestamps` (then it is dropped if forced).
    fn decoder_prefix(
        &mut self,
        model: &str,
        encoded: &Tensor,
        language: Option<&str>,
        task: Option<&str>,
        timestamps: bool,
    ) -> Result<Vec<u32>, SkillError> {
        let mut prefix: Vec<Option<u32>> = vec![Some(self.decoder_start)];
        if let Some(forced) = self
            .generation
            .get("forced_decoder_ids")
            .and_then(Value::as_array)
        {
            for (i, pair) in forced.iter().enumerate() {
                let position = pair.get(0).and_then(Value::as_u64);
                if position != Some(i as u64 + 1) {
                    return Err(malformed(
                        model,
                        "generation_config.json",
                        "forced_decoder_ids must name positions 1, 2, ... in order",
                    ));
                }
                prefix.push(pair.get(1).and_then(Value::as_u64).map(|v| v as u32));
            }
        }
        let languages: Vec<u32> = self
            .generation
            .get("lang_to_id")
            .and_then(Value::as_object)
            .map(|m| {
                m.values()
                    .filter_map(Value::as_u64)
                    .map(|v| v as u32)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(code) = language {
            if let Some(id) = self.language_id(code)? {
                if prefix.len() > 1 {
                    prefix[1] = Some(id);
                } else {
                    prefix.push(Some(id));
                }
            }
        }
        let language_undefined = prefix.len() <= 1 || prefix[1].is_none();
        if language_undefined && !languages.is_empty() {
            let logits = self
                .model
                .decode(&[self.decoder_start], encoded)?
                .to_vec1::<f32>()?;
            self.model.reset();
            let language = languages
                .iter()
                .copied()
                .filter(|&id| (id as usize) < logits.len())
                .max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]))
                .ok_or_else(|| {
                    malformed(
                        model,
                        "generation_config.json",
                        "lang_to_id ids are beyond the vocabulary",
                    )
                })?;
            tracing::debug!(language, "detected language");
            if prefix.len() > 1 {
                prefix[1] = Some(language);
            } else {
                prefix.push(Some(language));
            }
        }
        let mut prefix: Vec<u32> = prefix.into_iter().flatten().collect();
        if let Some(task) = task {
            self.force_task(&mut prefix, task)?;
        }
        if let Some(no_timestamps) = self
            .generation
            .get("no_timestamps_token_id")
            .and_then(Value::as_u64)
        {
            let no_timestamps = no_timestamps as u32;
            if !timestamps && prefix.last() != Some(&no_timestamps) {
                prefix.push(no_timestamps);
            } else if timestamps && prefix.last() == Some(&no_timestamps) {
                prefix.pop();
            }
        }
        Ok(prefix)
    }

    /// The language token for `code` (`en` or `<|en|>`), as
    /// `generate(language=...)` takes it. An English-only model (no
    /// `lang_to_id`) takes only English and needs no token (`None`).
    fn language_id(&self, code: &str) -> Result<Option<u32>, SkillError> {
        let bare = code
            .trim()
            .trim_start_matches("<|")
            .trim_end_matches("|>")
            .to_ascii_lowercase();
        let Some(ids) = self.generation.get("lang_to_id").and_then(Value::as_object) else {
            return if bare == "en" || bare == "english" {
                Ok(None)
            } else {
                Err(SkillError::InvalidInput(format!(
                    "this Whisper model is English-only; it cannot transcribe language '{code}'"
                )))
            };
        };
        match ids.get(&format!("<|{bare}|>")).and_then(Value::as_u64) {
            Some(id) => Ok(Some(id as u32)),
            None => {
                let mut known: Vec<&str> = ids
                    .keys()
                    .map(|k| k.trim_start_matches("<|").trim_end_matches("|>"))
                    .collect();
                known.sort_unstable();
                Err(SkillError::InvalidInput(format!(
                    "language '{code}' is not one this model knows (codes: {})",
                    known.join(", ")
                )))
            }
        }
    }

    /// Puts `task`'s token in the prefix: in place of the task token the
    /// generation config forces, else right after the language.
    fn force_task(&self, prefix: &mut Vec<u32>, task: &str) -> Result<(), SkillError> {
        let Some(tasks) = self.generation.get("task_to_id").and_then(Value::as_object) else {
            return Err(SkillError::InvalidInput(format!(
                "this Whisper model is English-only; it has no task to set ('{task}')"
            )));
        };
        let id = tasks.get(task).and_then(Value::as_u64).ok_or_else(|| {
            SkillError::InvalidInput(format!(
                "task '{task}' is not one this model knows (transcribe, translate)"
            ))
        })? as u32;
        let task_ids: Vec<u64> = tasks.values().filter_map(Value::as_u64).collect();
        match prefix
            .iter()
            .position(|t| task_ids.contains(&u64::from(*t)))
        {
            Some(at) => prefix[at] = id,
            None => prefix.insert(prefix.len().min(2), id),
        }
        Ok(())
    }

    /// Whether the generation config asks for timestamps by default
    /// (`return_timestamps`), as `generate` reads it.
    fn returns_timestamps(&self) -> bool {
        self.generation
            .get("return_timestamps")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The language code of `prefix`'s language token (`en` for an
    /// English-only model).
    fn language_of(&self, prefix: &[u32]) -> Option<String> {
        match self.generation.get("lang_to_id").and_then(Value::as_object) {
            None => Some("en".to_owned()),
            Some(ids) => prefix.iter().find_map(|&token| {
                ids.iter().find_map(|(name, id)| {
                    (id.as_u64() == Some(u64::from(token))).then(|| {
                        name.trim_start_matches("<|")
                            .trim_end_matches("|>")
                            .to_owned()
                    })
                })
            }),
        }
    }

    fn transcribe(
        &mut self,
        model: &str,
        device: &Device,
        source: &dyn AudioSource,
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        if options.max_new_tokens == 0 {
            return Err(SkillError::InvalidInput(
                "max_new_tokens must be at least 1".to_owned(),
            ));
        }
        let rate = self.front.config().sampling_rate;
        if options.chunk_length_s.is_some() && (options.return_inputs || options.return_logits) {
            return Err(SkillError::InvalidInput(
                "inputs and logits are returned for audio decoded whole, not in chunks".to_owned(),
            ));
        }
        if let Some(chunk_length_s) = options.chunk_length_s {
            let stride_length_s = options.stride_length_s.unwrap_or(chunk_length_s / 6.0);
            let samples = samples_at(source, rate)?;
            return self.transcribe_chunked(
                model,
                device,
                &samples,
                options,
                chunk_length_s,
                stride_length_s,
            );
        }
        // A first pass: the length, and the log-mel maximum long-form
        // features are floored by.
        // transformers decodes long-form when the whole recording's
        // features are wider than one window.
        let survey = self.survey(source)?;
        let long = matches!(survey, long_form::Survey::Long { .. });
        if (long || options.timestamps || self.returns_timestamps())
            && (options.return_inputs || options.return_logits)
        {
            return Err(SkillError::InvalidInput(
                "inputs and logits are returned for one window decoded without timestamps (audio up to 30 s)".to_owned(),
            ));
        }
        match survey {
            long_form::Survey::Short(samples) => {
                // Up to a hop over 30 s still gives one window: the feature
                // extractor's default call truncates it to the window.
                let samples = &samples[..samples.len().min(self.front.config().n_samples)];
                let features = self.front.features(samples)?;
                let timestamps = options.timestamps || self.returns_timestamps();
                self.run_window(model, device, features, timestamps, options)
            }
            long_form::Survey::Long { frames, floor } => {
                self.run_streamed(model, device, source, (frames, floor), options)
            }
        }
    }

    /// One window's padded features (`[mels × width]`, audio of at most
    /// 30 s) decoded from a fresh decoder state: with timestamps (the
    /// sequential loop, which may go round more than once) or without (the
    /// short-form decoding).
    fn run_window(
        &mut self,
        model: &str,
        device: &Device,
        features: Vec<f32>,
        timestamps: bool,
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        self.model.reset();
        let result = if timestamps {
            self.run_padded(model, device, &features, options)
        } else {
            let mels = self.front.config().feature_size;
            let frames = features.len() / mels;
            let input = Tensor::from_vec(features, (1, mels, frames), device)?;
            self.run(model, &input, options)
        };
        self.model.reset();
        result
    }

    fn run(
        &mut self,
        model: &str,
        input: &Tensor,
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        let encoded = self.model.encode(input)?;
        let prefix = self.decoder_prefix(
            model,
            &encoded,
            options.language.as_deref(),
            options.task.as_deref(),
            false,
        )?;
        let raw = self.model.decode(&prefix, &encoded)?;
        let mut first_suppressed = self.suppress.clone();
        first_suppressed.extend_from_slice(&self.begin_suppress);
        let first = whisper::suppress(&raw, &first_suppressed)?;
        let loop_options = GenerateOptions {
            max_new_tokens: options.max_new_tokens,
            ..GenerateOptions::default()
        };
        let inputs = LoopInputs {
            tokenizer: &self.tokenizer,
            eos_ids: &self.eos_ids,
            options: &loop_options,
            context: prefix.clone(),
            room: self.model.room(),
            model,
        };
        let suppress = self.suppress.clone();
        let model_ref = &mut self.model;
        let generation = decode_loop::run(
            inputs,
            first,
            &mut |token| {
                Ok(whisper::suppress(
                    &model_ref.decode(&[token], &encoded)?,
                    &suppress,
                )?)
            },
            &mut |_| {},
        )?;
        let mut preprocessed = BTreeMap::new();
        if options.return_inputs {
            preprocessed.insert("input_features".to_owned(), Array::from_tensor(input)?);
        }
        let mut outputs = BTreeMap::new();
        if options.return_logits {
            outputs.insert(
                "prefix_logits".to_owned(),
                Array::from_tensor(&raw.unsqueeze(0)?)?,
            );
        }
        Ok(Transcription {
            text: generation.text,
            token_ids: generation.token_ids,
            words: Vec::new(),
            segments: Vec::new(),
            language: self.language_of(&prefix),
            decoder_prefix: prefix,
            frame_ids: Vec::new(),
            preprocessed,
            outputs,
        })
    }
}

/// Longest audio a CTC model takes in one request: its self-attention is
/// quadratic in the frames (50 per second), so an hour would ask for
/// terabytes. 60 s is about 430 MB of attention scores for wav2vec2-base.
pub const MAX_CTC_SECONDS: usize = 60;

/// Chunks a CTC model decodes longer audio in when the request names none
/// (with the pipeline's default overlap, a sixth on each side).
pub const DEFAULT_CTC_CHUNK_SECONDS: f64 = 30.0;

impl Wav2Vec2Runner {
    fn transcribe(
        &mut self,
        device: &Device,
        samples: &[f32],
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        if let Some(task) = &options.task {
            return Err(SkillError::InvalidInput(format!(
                "a CTC model (wav2vec2) only transcribes; it takes no task ('{task}')"
            )));
        }
        if let Some(language) = &options.language {
            // A CTC model has one vocabulary for one language and no way
            // to be told another; refusing says so instead of ignoring it.
            return Err(SkillError::InvalidInput(format!(
                "a CTC model (wav2vec2) transcribes the one language it was trained on; it takes no language ('{language}')"
            )));
        }
        let rate = self.front.sampling_rate.max(1) as usize;
        if self.config.frames_for(samples.len()) == 0 {
            return Err(SkillError::InvalidInput(format!(
                "the audio is too short: {} samples give no output frame",
                samples.len()
            )));
        }
        let chunk_length_s = options.chunk_length_s.or_else(|| {
            (samples.len() > MAX_CTC_SECONDS * rate).then_some(DEFAULT_CTC_CHUNK_SECONDS)
        });
        if let Some(chunk_length_s) = chunk_length_s {
            if options.return_inputs || options.return_logits {
                return Err(SkillError::InvalidInput(
                    "inputs and logits are returned for audio decoded whole, not in chunks"
                        .to_owned(),
                ));
            }
            let stride_length_s = options.stride_length_s.unwrap_or(chunk_length_s / 6.0);
            let frame_ids =
                self.chunked_frame_ids(device, samples, chunk_length_s, stride_length_s)?;
            return Ok(self.answer(frame_ids, options, BTreeMap::new(), BTreeMap::new()));
        }
        let values = waveform::input_values(&self.front, samples);
        let (input, logits) = match &self.model {
            CtcModel::Candle(model) => {
                let input = Tensor::new(values.as_slice(), device)?;
                let logits = model.forward(&input)?;
                (input, logits)
            }
            CtcModel::Onnx(model) => {
                let logits = model.forward(&values)?;
                let n = values.len();
                (Tensor::from_vec(values, n, &Device::Cpu)?, logits)
            }
        };
        let frame_ids: Vec<u32> = logits.argmax(candle_core::D::Minus1)?.to_vec1()?;
        let mut preprocessed = BTreeMap::new();
        if options.return_inputs {
            preprocessed.insert(
                "input_values".to_owned(),
                Array::from_tensor(&input.unsqueeze(0)?)?,
            );
        }
        let mut outputs = BTreeMap::new();
        if options.return_logits {
            outputs.insert(
                "logits".to_owned(),
                Array::from_tensor(&logits.unsqueeze(0)?)?,
            );
        }
        Ok(self.answer(frame_ids, options, preprocessed, outputs))
    }

    /// The logits' argmax ids for `samples` in overlapping chunks, each
    /// chunk's overlap dropped, as the ASR pipeline's `chunk_iter` and
    /// `postprocess` do for CTC models.
    fn chunked_frame_ids(
        &self,
        device: &Device,
        samples: &[f32],
        chunk_length_s: f64,
        stride_length_s: f64,
    ) -> Result<Vec<u32>, SkillError> {
        let rate = f64::from(self.front.sampling_rate.max(1));
        let align = self.config.conv_stride.iter().product::<usize>().max(1);
        // Python's round (half to even), to a multiple of the frame stride.
        let aligned = |seconds: f64| -> usize {
            ((seconds * rate / align as f64).round_ties_even().max(0.0) as usize) * align
        };
        let (chunk_len, stride) = (aligned(chunk_length_s), aligned(stride_length_s));
        if !(chunk_length_s.is_finite() && stride_length_s.is_finite())
            || chunk_len == 0
            || chunk_len <= 2 * stride
        {
            return Err(SkillError::InvalidInput(format!(
                "chunks of {chunk_length_s} s with {stride_length_s} s of overlap on each side leave nothing to decode"
            )));
        }
        if self.config.frames_for(chunk_len) == 0 {
            return Err(SkillError::InvalidInput(format!(
                "chunks of {chunk_length_s} s are too short for the model to give an output frame"
            )));
        }
        if chunk_len > MAX_CTC_SECONDS * rate as usize {
            return Err(SkillError::InvalidInput(format!(
                "chunks of {chunk_length_s} s are longer than a CTC model (wav2vec2) takes at once ({MAX_CTC_SECONDS} s)"
            )));
        }
        let mut ids = Vec::new();
        for span in pipeline_chunks(samples.len(), chunk_len, stride) {
            let chunk = &samples[span.start..span.end];
            let (left, right) = (span.left, span.right);
            // A tail too short for the feature encoder gives no frame
            // (the model cannot run on it): nothing to add.
            if self.config.frames_for(chunk.len()) > 0 {
                let values = waveform::input_values(&self.front, chunk);
                let logits = match &self.model {
                    CtcModel::Candle(model) => {
                        model.forward(&Tensor::new(values.as_slice(), device)?)?
                    }
                    CtcModel::Onnx(model) => model.forward(&values)?,
                };
                let frames: Vec<u32> = logits.argmax(candle_core::D::Minus1)?.to_vec1()?;
                // The pipeline's `rescale_stride`: samples to frames.
                let n = chunk.len() as f64;
                let token_n = (n / align as f64).round_ties_even();
                let drop_left = (left as f64 / n * token_n).round_ties_even() as usize;
                let drop_right = (right as f64 / n * token_n).round_ties_even() as usize;
                let keep_end = (token_n as usize)
                    .saturating_sub(drop_right)
                    .min(frames.len());
                if drop_left < keep_end {
                    ids.extend_from_slice(&frames[drop_left..keep_end]);
                }
            }
        }
        Ok(ids)
    }

    /// The transcription of `frame_ids`: CTC text, and the words' times
    /// when asked.
    fn answer(
        &self,
        frame_ids: Vec<u32>,
        options: &TranscribeOptions,
        preprocessed: BTreeMap<String, Array>,
        outputs: BTreeMap<String, Array>,
    ) -> Transcription {
        let words = if options.timestamps {
            // transformers: offset × inputs_to_logits_ratio / sampling_rate.
            let seconds_per_frame = self.config.conv_stride.iter().product::<usize>() as f64
                / f64::from(self.front.sampling_rate.max(1));
            self.vocab
                .offsets(&frame_ids, false)
                .1
                .into_iter()
                .map(|w| TimedWord {
                    word: w.text,
                    start: w.start as f64 * seconds_per_frame,
                    end: w.end as f64 * seconds_per_frame,
                })
                .collect()
        } else {
            Vec::new()
        };
        Transcription {
            words,
            segments: Vec::new(),
            text: self.vocab.decode(&frame_ids, false),
            token_ids: Vec::new(),
            decoder_prefix: Vec::new(),
            language: None,
            frame_ids,
            preprocessed,
            outputs,
        }
    }
}
