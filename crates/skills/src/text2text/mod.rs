//! Text-to-text generation with encoder-decoder models (T5): encode once,
//! then decode from `decoder_start_token_id` with the KV cache, through the
//! same token loop as causal models
//! ([`crate::text_generation::decode_loop`]). Runs on candle from the
//! safetensors weights, or on ONNX Runtime / OpenVINO from optimum's seq2seq
//! export (`onnx/encoder_model.onnx`, `onnx/decoder_model.onnx`,
//! `onnx/decoder_with_past_model.onnx`) when the model ships one.

use crate::load::backend_chain::load_on_chain_with_onnx;
use crate::load::weights::var_builder;
use crate::load::{model_error, skill_api, Loaded, ModelFiles};
use crate::onnx_seq2seq::{open_seq2seq, seq2seq_graphs, OnnxSeq2Seq};
use crate::text_generation::decode_loop::{self, LoopInputs};
use crate::text_generation::{generation_config, GenerateOptions, Generation};
use crate::{SkillError, SkillKind};
use candle_core::{DType, Tensor};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::FileKind;
use ipfs_accelerate_models::{t5, ModelError};
use serde_json::Value;
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// A loaded encoder-decoder model with its tokenizer.
#[derive(Debug)]
pub struct Text2TextGenerator {
    loaded: Loaded,
    model: Mutex<Seq2Seq>,
    tokenizer: Tokenizer,
    eos_ids: Vec<u32>,
    decoder_start: u32,
    /// Longest input in tokens: attention is sized by it, so a longer one is
    /// refused rather than allowed to allocate without bound.
    max_input_tokens: usize,
}

/// T5's relative positions set no input limit; its checkpoints are trained
/// on 512 tokens (`n_positions` in their configs).
const DEFAULT_MAX_INPUT_TOKENS: usize = 512;

/// The input limit: `n_positions` from the config, else the tokenizer's
/// `model_max_length` (transformers writes a huge placeholder when there is
/// none, so only a plausible one counts), else 512.
fn max_input_tokens(config: &Value, tokenizer_config: Option<&Value>) -> usize {
    let plausible = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .filter(|n| (1..=1_000_000).contains(n))
            .map(|n| n as usize)
    };
    plausible(config.get("n_positions"))
        .or_else(|| plausible(tokenizer_config.and_then(|c| c.get("model_max_length"))))
        .unwrap_or(DEFAULT_MAX_INPUT_TOKENS)
}

skill_api!(
    Text2TextGenerator,
    SkillKind::Text2Text,
    "an encoder-decoder text-to-text model"
);

impl Text2TextGenerator {
    /// The network and everything the task needs besides the opened
    /// files, on the first backend of the chain for `backend` that can hold
    /// it.
    fn from_files(mut files: ModelFiles<'_>, backend: BackendKind) -> Result<Self, SkillError> {
        let (loader, model) = (files.loader, files.model);
        let (name, config) = (files.name.clone(), files.config.clone());
        let generation = files.generation_config()?;
        let decoder_start = generation_config::decoder_start_id(&config, generation.as_ref())
            .or_else(|| config.get("pad_token_id").and_then(Value::as_u64).map(|v| v as u32))
            .ok_or_else(|| {
                SkillError::InvalidInput(format!(
                    "model '{name}': neither generation_config.json nor config.json gives decoder_start_token_id"
                ))
            })?;
        let tokenizer = files.tokenizer()?;
        let tokenizer_config = files.optional_json("tokenizer_config.json")?;
        let max_input_tokens = max_input_tokens(&config, tokenizer_config.as_ref());
        let t5_config: t5::T5Config = files.parse()?;
        let graphs = seq2seq_graphs(loader, model, backend, &mut files.files)?;
        let ((seq2seq, weight_files), kind) = load_on_chain_with_onnx(
            backend,
            graphs.is_some(),
            |executor| {
                let model = open_seq2seq(
                    executor,
                    graphs.as_deref(),
                    &["input_ids", "attention_mask"],
                )?;
                Ok((Seq2Seq::Onnx(Box::new(model)), Vec::new()))
            },
            |device| {
                // Weights only for candle: an ONNX run does not fetch them.
                let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
                let vb = var_builder(loader, &name, &config, &weight_files, DType::F32, device)?;
                let t5 = t5::T5::load(vb, &t5_config)
                    .map_err(|e| model_error(&name, ModelError::Tensor(e)))?;
                Ok((
                    Seq2Seq::Candle {
                        model: Box::new(t5),
                        encoded: None,
                    },
                    weight_files,
                ))
            },
        )?;
        files.files.extend(weight_files);
        Ok(Self {
            eos_ids: generation_config::eos_ids(&config, generation.as_ref()),
            model: Mutex::new(seq2seq),
            tokenizer,
            decoder_start,
            max_input_tokens,
            loaded: files.finish(kind),
        })
    }

    /// Generates the output text for `text` (used exactly as given; the
    /// tokenizer appends `</s>` as transformers' does). `token_ids` are the
    /// ids after the decoder start token; `last_logits` (when asked) are the
    /// first decoder step's.
    pub fn generate(
        &self,
        text: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        if text.is_empty() {
            return Err(SkillError::InvalidInput("the text is empty".to_owned()));
        }
        if options.max_new_tokens == 0 {
            return Err(SkillError::InvalidInput(
                "max_new_tokens must be at least 1".to_owned(),
            ));
        }
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| SkillError::Tokenizer {
                model: self.loaded.name.clone(),
                source: e,
            })?;
        let ids = encoding.get_ids();
        if ids.len() > self.max_input_tokens {
            return Err(SkillError::InvalidInput(format!(
                "the text is {} tokens but model '{}' takes at most {}; shorten it",
                ids.len(),
                self.loaded.name,
                self.max_input_tokens
            )));
        }
        let mut model = self.model.lock().map_err(|_| {
            SkillError::InvalidInput("the model is unusable after an earlier failure".to_owned())
        })?;
        model.encode(ids)?;
        let first = model.decode_step(self.decoder_start)?;
        let inputs = LoopInputs {
            tokenizer: &self.tokenizer,
            eos_ids: &self.eos_ids,
            options,
            // The repetition penalty sees the decoder's own ids, as in
            // transformers (whose input_ids are the decoder's).
            context: vec![self.decoder_start],
            // Relative positions set no limit: the documented cap does.
            room: decode_loop::UNBOUNDED_CONTEXT_CAP,
            model: &self.loaded.name,
        };
        let mut generation = decode_loop::run(
            inputs,
            first,
            &mut |token| model.decode_step(token),
            on_text,
        );
        model.reset();
        if let Ok(g) = &mut generation {
            g.prompt_tokens = ids.len();
        }
        generation
    }
}

/// The model on the backend that holds it, with the current input's
/// encoder output.
#[derive(Debug)]
enum Seq2Seq {
    Candle {
        model: Box<t5::T5>,
        encoded: Option<Tensor>,
    },
    // Three sessions: boxed to keep the enum small.
    Onnx(Box<OnnxSeq2Seq>),
}

impl Seq2Seq {
    /// Forgets the cache, then encodes `ids` (one sequence).
    fn encode(&mut self, ids: &[u32]) -> Result<(), SkillError> {
        self.reset();
        match self {
            Self::Candle { model, encoded } => {
                let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
                *encoded = Some(model.encode(&input)?);
                Ok(())
            }
            Self::Onnx(model) => model.encode(ids),
        }
    }

    /// Feeds one decoder token; returns the next logits, f32 `[vocab]`.
    fn decode_step(&mut self, token: u32) -> Result<Tensor, SkillError> {
        match self {
            Self::Candle {
                model,
                encoded: Some(encoded),
            } => Ok(model.decode_step(token, encoded)?),
            Self::Candle { encoded: None, .. } => Err(SkillError::InvalidInput(
                "decoder step before the encoder ran".to_owned(),
            )),
            Self::Onnx(model) => model.decode_step(token),
        }
    }

    /// Forgets the encoder output and the cache.
    fn reset(&mut self) {
        match self {
            Self::Candle { model, encoded } => {
                model.reset();
                *encoded = None;
            }
            Self::Onnx(model) => model.reset(),
        }
    }
}
