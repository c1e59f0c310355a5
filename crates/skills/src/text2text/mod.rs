//! Text-to-text generation with encoder-decoder models (T5): encode once,
//! then decode from `decoder_start_token_id` with the KV cache, through the
//! same token loop as causal models
//! ([`crate::text_generation::decode_loop`]).

mod t5;

use crate::backend_chain::load_on_chain;
use crate::text_generation::decode_loop::{self, LoopInputs};
use crate::text_generation::{generation_config, load_tokenizer, GenerateOptions, Generation};
use crate::weights::{one_line, var_builder};
use crate::{registry, SkillError, SkillKind};
use candle_core::{DType, Tensor};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{FileKind, Loader, ModelRef, ResolvedFile};
use serde_json::Value;
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// A loaded encoder-decoder model with its tokenizer.
pub struct Text2TextGenerator {
    model_name: String,
    model: Mutex<t5::T5>,
    tokenizer: Tokenizer,
    eos_ids: Vec<u32>,
    decoder_start: u32,
    backend: BackendKind,
    files: Vec<ResolvedFile>,
}

impl std::fmt::Debug for Text2TextGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Text2TextGenerator")
            .field("model", &self.model_name)
            .field("backend", &self.backend)
            .field("decoder_start", &self.decoder_start)
            .finish_non_exhaustive()
    }
}

impl Text2TextGenerator {
    /// Loads `model` through `loader` on the first backend of the chain for
    /// `backend` that can hold it.
    pub fn load(
        loader: &Loader,
        model: &ModelRef,
        backend: BackendKind,
    ) -> Result<Self, SkillError> {
        let name = model.to_string();
        let (config, mut files) = registry::config_for_skill(
            loader,
            model,
            SkillKind::Text2Text,
            "an encoder-decoder text-to-text model",
        )?;
        let generation = generation_config::read(loader, model, &mut files)?;
        let decoder_start = generation_config::decoder_start_id(&config, generation.as_ref())
            .or_else(|| config.get("pad_token_id").and_then(Value::as_u64).map(|v| v as u32))
            .ok_or_else(|| {
                SkillError::InvalidInput(format!(
                    "model '{name}': neither generation_config.json nor config.json gives decoder_start_token_id"
                ))
            })?;
        let tokenizer_files = loader.from_pretrained(model, FileKind::Tokenizer)?;
        let tokenizer = load_tokenizer(&name, &tokenizer_files[0].path)?;
        files.extend(tokenizer_files);
        let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
        files.extend(weight_files.iter().cloned());
        let t5_config = t5::parse_config(&name, &config)?;
        let (t5, _device, kind) = load_on_chain(backend, |device| {
            let vb = var_builder(loader, &name, &config, &weight_files, DType::F32, device)?;
            t5::T5::load(vb, &t5_config).map_err(|e| SkillError::Weights {
                model: name.clone(),
                reason: one_line(&e.to_string()),
            })
        })?;
        Ok(Self {
            eos_ids: generation_config::eos_ids(&config, generation.as_ref()),
            model_name: name,
            model: Mutex::new(t5),
            tokenizer,
            decoder_start,
            backend: kind,
            files,
        })
    }

    /// The backend that really runs this model.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// Every file loaded, with the layer that served it.
    pub fn files(&self) -> &[ResolvedFile] {
        &self.files
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
                model: self.model_name.clone(),
                reason: one_line(&e.to_string()),
            })?;
        let ids = encoding.get_ids();
        let mut model = self.model.lock().map_err(|_| {
            SkillError::InvalidInput("the model is unusable after an earlier failure".to_owned())
        })?;
        model.reset();
        let device = model.device().clone();
        let input = Tensor::new(ids, &device)?.unsqueeze(0)?;
        let encoded = model.encode(&input)?;
        let first = model.decode_step(self.decoder_start, &encoded)?;
        let inputs = LoopInputs {
            tokenizer: &self.tokenizer,
            eos_ids: &self.eos_ids,
            options,
            // The repetition penalty sees the decoder's own ids, as in
            // transformers (whose input_ids are the decoder's).
            context: vec![self.decoder_start],
            room: usize::MAX,
            model: &self.model_name,
        };
        let mut generation = decode_loop::run(
            inputs,
            first,
            &mut |token| Ok(model.decode_step(token, &encoded)?),
            on_text,
        );
        model.reset();
        if let Ok(g) = &mut generation {
            g.prompt_tokens = ids.len();
        }
        generation
    }
}
