//! Text generation with decoder-only models (GPT-2, OPT, LLaMA from
//! safetensors or GGUF): one loop for all of them ([`decode_loop`]), greedy
//! or seeded sampling, stop strings, streaming.

pub mod activation;
pub mod attention;
mod causal_lm;
pub mod chat_template;
pub mod decode_loop;
pub mod generation_config;
pub mod gguf;
pub mod gpt2;
pub mod llama;
mod onnx_causal_lm;
pub mod opt;
mod options;
pub mod rope;
mod stop_strings;

pub use causal_lm::CausalLm;
pub use chat_template::ChatTemplate;
pub use options::{GenerateOptions, Generation, SamplingParams, StopReason};

use crate::graph_or_weights::load_graph_or_weights;
use crate::weights::one_line;
use crate::{registry, SkillError, SkillKind};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{FileKind, LoadError, Loader, ModelRef, ResolvedFile};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// A loaded causal language model with its tokenizer.
pub struct TextGenerator {
    model_name: String,
    // One sequence at a time: the model holds its own KV cache.
    model: Mutex<Box<dyn CausalLm>>,
    tokenizer: Tokenizer,
    eos_ids: Vec<u32>,
    backend: BackendKind,
    files: Vec<ResolvedFile>,
    chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for TextGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextGenerator")
            .field("model", &self.model_name)
            .field("backend", &self.backend)
            .field("eos_ids", &self.eos_ids)
            .finish_non_exhaustive()
    }
}

impl TextGenerator {
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
            SkillKind::TextGeneration,
            "a causal language model",
        )?;
        let model_type = config
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let generation_config = generation_config::read(loader, model, &mut files)?;
        let tokenizer_files = loader.from_pretrained(model, FileKind::Tokenizer)?;
        let tokenizer = load_tokenizer(&name, &tokenizer_files[0].path)?;
        let chat_template = chat_template::from_files(loader, model, &tokenizer_files);
        files.extend(tokenizer_files);
        let (lm, kind, loaded_files) = load_graph_or_weights(
            loader,
            model,
            &name,
            &config,
            backend,
            |session| {
                let lm: Box<dyn CausalLm> =
                    Box::new(onnx_causal_lm::OnnxCausalLm::new(session, &config)?);
                Ok(lm)
            },
            |vb, _device| build_causal_lm(&name, &model_type, &config, vb),
        )?;
        files.extend(loaded_files);
        Ok(Self {
            eos_ids: generation_config::eos_ids(&config, generation_config.as_ref()),
            model_name: name,
            model: Mutex::new(lm),
            tokenizer,
            backend: kind,
            files,
            chat_template,
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

    /// The tokenizer (with the post-processing `transformers` applies).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The ids that end generation.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Generates from `prompt`, used exactly as given (the tokenizer adds
    /// the special tokens `transformers` adds, such as LLaMA's `<s>`).
    /// `on_text` receives the text as it is generated.
    pub fn generate(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        if prompt.is_empty() {
            return Err(SkillError::InvalidInput("the prompt is empty".to_owned()));
        }
        let encoding = self
            .tokenizer
            .encode(prompt, true)
            .map_err(|e| SkillError::Tokenizer {
                model: self.model_name.clone(),
                reason: one_line(&e.to_string()),
            })?;
        self.generate_from_ids(encoding.get_ids(), options, on_text)
    }

    /// Like [`Self::generate`] from token ids.
    pub fn generate_from_ids(
        &self,
        prompt_ids: &[u32],
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        if prompt_ids.is_empty() {
            return Err(SkillError::InvalidInput(
                "the prompt has no tokens".to_owned(),
            ));
        }
        if options.max_new_tokens == 0 {
            return Err(SkillError::InvalidInput(
                "max_new_tokens must be at least 1".to_owned(),
            ));
        }
        let mut model = self.model.lock().map_err(|_| {
            SkillError::InvalidInput("the model is unusable after an earlier failure".to_owned())
        })?;
        let room = match model.context_length() {
            Some(context) if prompt_ids.len() >= context => {
                return Err(SkillError::InvalidInput(format!(
                    "the prompt is {} tokens but model '{}' holds {context} positions; shorten it",
                    prompt_ids.len(),
                    self.model_name
                )));
            }
            Some(context) => context - prompt_ids.len(),
            None => usize::MAX,
        };
        model.reset();
        let first: Tensor = model.forward(prompt_ids)?;
        let inputs = decode_loop::LoopInputs {
            tokenizer: &self.tokenizer,
            eos_ids: &self.eos_ids,
            options,
            context: prompt_ids.to_vec(),
            room,
            model: &self.model_name,
        };
        let result = decode_loop::run(
            inputs,
            first,
            &mut |token| Ok(model.forward(&[token])?),
            on_text,
        );
        model.reset();
        result
    }
}

/// Reads `tokenizer.json`.
pub(crate) fn load_tokenizer(model: &str, path: &std::path::Path) -> Result<Tokenizer, SkillError> {
    Tokenizer::from_file(path).map_err(|e| SkillError::Tokenizer {
        model: model.to_owned(),
        reason: one_line(&e.to_string()),
    })
}

/// Parses `config.json` into a model's config type; a wrong or missing key is
/// a malformed-config error naming it.
pub(crate) fn parse_config<T: DeserializeOwned>(
    model: &str,
    config: &Value,
) -> Result<T, SkillError> {
    serde_json::from_value(config.clone()).map_err(|e| {
        SkillError::Load(LoadError::Malformed {
            model: model.to_owned(),
            file: "config.json".to_owned(),
            reason: e.to_string(),
        })
    })
}

fn build_causal_lm(
    name: &str,
    model_type: &str,
    config: &Value,
    vb: VarBuilder<'static>,
) -> Result<Box<dyn CausalLm>, SkillError> {
    let weights_error = |e: candle_core::Error| SkillError::Weights {
        model: name.to_owned(),
        reason: one_line(&e.to_string()),
    };
    Ok(match model_type {
        "gpt2" => {
            Box::new(gpt2::Gpt2::load(vb, &parse_config(name, config)?).map_err(weights_error)?)
        }
        "llama" => Box::new(llama::Llama::load(name, vb, &parse_config(name, config)?)?),
        "opt" => Box::new(opt::Opt::load(vb, &parse_config(name, config)?).map_err(weights_error)?),
        other => {
            return Err(SkillError::Unsupported {
                model: name.to_owned(),
                found: format!("model_type '{other}'"),
                supported: registry::supported_for(SkillKind::TextGeneration),
            })
        }
    })
}
