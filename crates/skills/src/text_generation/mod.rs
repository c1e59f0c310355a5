//! Text generation with decoder-only models (GPT-2, OPT, LLaMA from
//! safetensors or GGUF): one loop for all of them ([`decode_loop`]), greedy
//! or seeded sampling, stop strings, streaming.

pub mod chat_template;
pub mod decode_loop;
pub mod generation_config;
pub mod gguf;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp;
pub(crate) mod onnx_causal_lm;
mod options;
mod stop_strings;

pub use chat_template::ChatTemplate;
pub use ipfs_accelerate_models::CausalLm;
pub use options::{Cancellation, GenerateOptions, Generation, SamplingParams, StopReason};

use crate::families::Task;
use crate::load::graph_or_weights::load_graph_or_weights;
use crate::load::{skill_api, Loaded, ModelFiles};
use crate::{SkillError, SkillKind};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_models::ModelError;
use serde_json::Value;
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// How a family's row in the family table builds its network from the
/// patched `config.json` and the weights.
pub(crate) type BuildCausalLm =
    fn(&Value, VarBuilder<'static>) -> Result<Box<dyn CausalLm>, ModelError>;

/// What computes: one model that runs a request at a time, or llama.cpp,
/// which runs several together.
#[derive(Debug)]
enum Engine {
    /// One sequence at a time: the model holds its own KV cache.
    Exclusive(Mutex<Box<dyn CausalLm>>),
    /// A stream per request, batched together ([`llama_cpp`]).
    #[cfg(feature = "llama-cpp")]
    LlamaCpp(llama_cpp::LlamaCppEngine),
}

/// A loaded causal language model with its tokenizer.
#[derive(Debug)]
pub struct TextGenerator {
    loaded: Loaded,
    engine: Engine,
    tokenizer: Tokenizer,
    eos_ids: Vec<u32>,
    chat_template: Option<ChatTemplate>,
}

skill_api!(
    TextGenerator,
    SkillKind::TextGeneration,
    "a causal language model"
);

impl TextGenerator {
    /// The network and everything the task needs besides the opened
    /// files, on the first backend of the chain for `backend` that can hold
    /// it.
    fn from_files(mut files: ModelFiles<'_>, backend: BackendKind) -> Result<Self, SkillError> {
        let (loader, model) = (files.loader, files.model);
        let Task::TextGeneration(build) = files.family.task else {
            return Err(files.wrong_task());
        };
        let generation_config = files.generation_config()?;
        let tokenizer = files.tokenizer()?;
        let chat_template = chat_template::from_files(loader, model, &files.files);
        let config = files.config.clone();
        let name = files.name.clone();
        let (lm, kind, loaded_files) = load_graph_or_weights(
            &files,
            backend,
            |session| {
                let lm: Box<dyn CausalLm> =
                    Box::new(onnx_causal_lm::OnnxCausalLm::new(session, &config)?);
                Ok(lm)
            },
            |vb, _device| build(&config, vb).map_err(|e| crate::load::model_error(&name, e)),
        )?;
        files.files.extend(loaded_files);
        let eos_ids = generation_config::eos_ids(&files.config, generation_config.as_ref());
        Ok(Self {
            eos_ids,
            engine: Engine::Exclusive(Mutex::new(lm)),
            tokenizer,
            chat_template,
            loaded: files.finish(kind),
        })
    }

    /// The tokenizer (with the post-processing `transformers` applies).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The ids that end generation.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// How many requests can generate at once: on llama.cpp they decode
    /// together in one batch per step; anywhere else one runs at a time.
    pub fn concurrent_requests(&self) -> usize {
        match &self.engine {
            Engine::Exclusive(_) => 1,
            #[cfg(feature = "llama-cpp")]
            Engine::LlamaCpp(engine) => engine.streams(),
        }
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
        let encoding =
            self.tokenizer
                .encode(prompt, true)
                .map_err(|source| SkillError::Tokenizer {
                    model: self.loaded.name.clone(),
                    source,
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
        match &self.engine {
            Engine::Exclusive(model) => {
                let mut model = model.lock().map_err(|_| {
                    SkillError::InvalidInput(
                        "the model is unusable after an earlier failure".to_owned(),
                    )
                })?;
                self.generate_on(&mut **model, prompt_ids, options, on_text)
            }
            #[cfg(feature = "llama-cpp")]
            Engine::LlamaCpp(engine) => {
                let mut stream = engine.stream()?;
                self.generate_on(&mut stream, prompt_ids, options, on_text)
            }
        }
    }

    /// The most requests decoded together in one step so far (llama.cpp's
    /// continuous batching); 1 for a model that runs one at a time.
    pub fn peak_concurrent_requests(&self) -> usize {
        match &self.engine {
            Engine::Exclusive(_) => 1,
            #[cfg(feature = "llama-cpp")]
            Engine::LlamaCpp(engine) => engine.peak_streams(),
        }
    }

    /// The generation itself, on a model that holds no other request's
    /// tokens.
    fn generate_on(
        &self,
        model: &mut dyn CausalLm,
        prompt_ids: &[u32],
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        // A model without a position limit (dynamic RoPE scaling) still gets
        // one: attention over the prompt is sized by it.
        let context = model
            .context_length()
            .unwrap_or(decode_loop::UNBOUNDED_CONTEXT_CAP);
        if prompt_ids.len() >= context {
            return Err(SkillError::InvalidInput(format!(
                "the prompt is {} tokens but model '{}' holds {context} positions; shorten it",
                prompt_ids.len(),
                self.loaded.name
            )));
        }
        let room = context - prompt_ids.len();
        model.reset();
        let first: Tensor = model.forward(prompt_ids)?;
        let inputs = decode_loop::LoopInputs {
            tokenizer: &self.tokenizer,
            eos_ids: &self.eos_ids,
            options,
            context: prompt_ids.to_vec(),
            room,
            model: &self.loaded.name,
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
