//! LLaMA-family models from a single GGUF file (llama.cpp's format): on
//! llama.cpp itself (the `llamacpp` backend, `auto`'s choice for quantized
//! compute, see [`super::llama_cpp`]) or on candle-transformers'
//! `quantized_llama`; the tokenizer from `tokenizer.json` beside the file or
//! else built from the GGUF metadata, EOS ids and the chat template from the
//! metadata, whichever computes.

mod dequantize;
mod locate;
mod metadata;
mod sentencepiece;
mod tokenizer;

pub use locate::{locate, GgufModel};

use super::chat_template::ChatTemplate;
use super::{Engine, TextGenerator};
use crate::load::backend_chain::load_on_chain;
use crate::load::weights::one_line;
use crate::load::{read_tokenizer, Loaded};
use crate::SkillError;
use candle_core::quantized::gguf_file::Content;
use candle_transformers::models::quantized_llama::ModelWeights;
use ipfs_accelerate_backends::{BackendError, BackendKind};
use ipfs_accelerate_loader::{Loader, ResolvedFile};
use ipfs_accelerate_models::quantized_llama::GgufLlama;
use metadata::Metadata;
use std::fs::File;
use std::io::BufReader;
use std::sync::Mutex;

/// The GGUF architectures `quantized_llama` reads (it takes `llama.*` keys).
const ARCHITECTURES: &[&str] = &["llama"];

/// How a GGUF model computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GgufCompute {
    /// Quantized weights times activations quantized to 8 bits, as
    /// llama.cpp does: the least memory, the fastest on CPU.
    #[default]
    Quantized,
    /// Weights dequantized to f32 at load, plain f32 matrix products: what
    /// `transformers` computes from the same file, at several times the
    /// memory.
    DequantizedF32,
}

impl TextGenerator {
    /// Loads the GGUF model `gguf` (see [`locate`]) through `loader` on the
    /// first backend of the chain for `backend` that can hold it, computing
    /// as `compute` says.
    pub fn load_gguf(
        loader: &Loader,
        gguf: &GgufModel,
        backend: BackendKind,
        compute: GgufCompute,
    ) -> Result<Self, SkillError> {
        let name = format!("{}/{}", gguf.model, gguf.file);
        let weights_file = loader.file(&gguf.model, &gguf.file)?;
        let content = read_content(&name, &weights_file)?;
        let meta = Metadata {
            model: &name,
            file: &weights_file.file,
            content: &content,
        };
        let architecture = meta.architecture()?;
        if !ARCHITECTURES.contains(&architecture) {
            return Err(SkillError::Unsupported {
                model: name.clone(),
                found: format!("GGUF architecture '{architecture}'"),
                supported: ARCHITECTURES.to_vec(),
            });
        }
        check_tensor_extents(&meta, &weights_file)?;
        check_hyperparameters(&meta)?;
        let context = meta
            .u32(&format!("{architecture}.context_length"))?
            .map(|c| c as usize);
        let eos_ids = tokenizer::eos_ids(&meta)?;
        let chat_template = chat_template(&meta)?;

        let mut files = vec![weights_file.clone()];
        let tokenizer = match loader.optional_file(&gguf.model, "tokenizer.json")? {
            Some(file) => {
                let tokenizer = read_tokenizer(&name, &file.path)?;
                files.push(file);
                tokenizer
            }
            None => tokenizer::from_metadata(&meta)?,
        };

        if runs_on_llama_cpp(&name, backend, compute)? {
            #[cfg(feature = "llama-cpp")]
            {
                let shape = super::llama_cpp::EngineShape::from_env()?;
                let engine =
                    super::llama_cpp::LlamaCppEngine::load(&name, &weights_file.path, shape)?;
                tracing::debug!(model = %name, "GGUF model loaded on llama.cpp");
                return Ok(Self {
                    loaded: Loaded {
                        name,
                        backend: BackendKind::LlamaCpp,
                        files,
                    },
                    engine: Engine::LlamaCpp(engine),
                    tokenizer,
                    eos_ids,
                    chat_template,
                });
            }
        }

        // The first backend tried reuses the content already read.
        let mut first = Some(content);
        let (lm, _device, kind) = load_on_chain(backend, |device| {
            let content = match first.take() {
                Some(content) => content,
                None => read_content(&name, &weights_file)?,
            };
            let mut reader = open(&name, &weights_file)?;
            let weights = match compute {
                GgufCompute::Quantized => ModelWeights::from_gguf(content, &mut reader, device),
                GgufCompute::DequantizedF32 => {
                    let (content, mut data) = dequantize::dequantized(&name, content, &mut reader)?;
                    ModelWeights::from_gguf(content, &mut data, device)
                }
            }
            .map_err(|e| SkillError::Weights {
                model: name.clone(),
                source: format!("{}: {}", weights_file.file, one_line(&e.to_string())).into(),
            })?;
            Ok(GgufLlama::new(weights, device.clone(), context))
        })?;
        tracing::debug!(model = %name, backend = %kind, ?compute, "GGUF model loaded");
        Ok(Self {
            loaded: Loaded {
                name,
                backend: kind,
                files,
            },
            engine: Engine::Exclusive(Mutex::new(Box::new(lm))),
            tokenizer,
            eos_ids,
            chat_template,
        })
    }
}

/// Whether llama.cpp computes: when asked for by name, and for `auto`
/// with quantized compute when it can run here (else candle does). The
/// f32 path (`--dequantize`) is candle's.
fn runs_on_llama_cpp(
    name: &str,
    backend: BackendKind,
    compute: GgufCompute,
) -> Result<bool, SkillError> {
    let asked = backend == BackendKind::LlamaCpp;
    if asked && compute == GgufCompute::DequantizedF32 {
        return Err(SkillError::Backend(BackendError::Unsupported {
            kind: backend,
            why: format!(
                "{name}: --dequantize computes in f32 on candle; use --backend cpu or auto"
            ),
        }));
    }
    #[cfg(feature = "llama-cpp")]
    {
        if asked {
            ipfs_accelerate_backends::llama_cpp::llama_backend()?;
            return Ok(true);
        }
        if backend == BackendKind::Auto && compute == GgufCompute::Quantized {
            return Ok(match ipfs_accelerate_backends::llama_cpp::llama_backend() {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!(model = name, "auto passes over llama.cpp: {e}");
                    false
                }
            });
        }
        Ok(false)
    }
    #[cfg(not(feature = "llama-cpp"))]
    {
        if asked {
            return Err(SkillError::Backend(BackendError::Unavailable {
                kind: backend,
                detail: "this build has no llama.cpp (cargo feature `llama-cpp`)".to_owned(),
            }));
        }
        Ok(false)
    }
}

fn open(name: &str, file: &ResolvedFile) -> Result<BufReader<File>, SkillError> {
    File::open(&file.path)
        .map(BufReader::new)
        .map_err(|e| SkillError::Weights {
            model: name.to_owned(),
            source: format!("{}: {e}", file.file).into(),
        })
}

/// The header: metadata and tensor table.
fn read_content(name: &str, file: &ResolvedFile) -> Result<Content, SkillError> {
    let mut reader = open(name, file)?;
    Content::read(&mut reader).map_err(|e| SkillError::Weights {
        model: name.to_owned(),
        source: format!(
            "{} is not a readable GGUF file: {}",
            file.file,
            one_line(&e.to_string())
        )
        .into(),
    })
}

/// A truncated download fails here, naming the first tensor past the end,
/// before any weights are read.
fn check_tensor_extents(meta: &Metadata<'_>, file: &ResolvedFile) -> Result<(), SkillError> {
    let size = std::fs::metadata(&file.path)
        .map_err(|e| meta.malformed(e.to_string()))?
        .len();
    let content = meta.content;
    for (tensor, info) in &content.tensor_infos {
        let dtype = info.ggml_dtype;
        let bytes = (info.shape.elem_count() / dtype.block_size() * dtype.type_size()) as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(bytes);
        if end > size {
            return Err(SkillError::Weights {
                model: meta.model.to_owned(),
                source: format!(
                    "{} is truncated: tensor '{tensor}' ends at byte {end} but the file has {size} bytes",
                    file.file
                ).into(),
            });
        }
    }
    Ok(())
}

/// candle's `from_gguf` divides by the head counts and sizes tables by
/// these numbers before it reads a tensor: a zero or an absurd value would
/// panic or allocate without bound there, so they are checked first. It
/// reads the `llama.*` keys whatever the architecture.
fn check_hyperparameters(meta: &Metadata<'_>) -> Result<(), SkillError> {
    use ipfs_accelerate_models::config_check::{count, heads_divide, width, within};
    let required = |key: &str| -> Result<usize, SkillError> {
        meta.u32(key)?
            .map(|v| v as usize)
            .ok_or_else(|| meta.malformed(format!("metadata has no '{key}'")))
    };
    let checked = |result: Result<(), ipfs_accelerate_models::ModelError>| {
        result.map_err(|e| meta.malformed(format!("metadata: {e}")))
    };
    let heads = required("llama.attention.head_count")?;
    let kv_heads = required("llama.attention.head_count_kv")?;
    let embedding = required("llama.embedding_length")?;
    checked(heads_divide(
        "llama.attention.head_count",
        heads,
        "llama.embedding_length",
        embedding,
    ))?;
    checked(count("llama.attention.head_count_kv", kv_heads))?;
    if !heads.is_multiple_of(kv_heads) {
        return Err(meta.malformed(format!(
            "metadata: llama.attention.head_count ({heads}) must be a multiple of llama.attention.head_count_kv ({kv_heads})"
        )));
    }
    checked(count("llama.block_count", required("llama.block_count")?))?;
    let rope = required("llama.rope.dimension_count")?;
    checked(width("llama.rope.dimension_count", rope))?;
    if rope % 2 != 0 || rope > embedding / heads {
        return Err(meta.malformed(format!(
            "metadata: llama.rope.dimension_count ({rope}) must be even and at most the head dimension ({})",
            embedding / heads
        )));
    }
    if let Some(experts) = meta.u32("llama.expert_count")? {
        if experts > 1 {
            checked(within("llama.expert_count", experts as usize, 1024))?;
        }
    }
    Ok(())
}

fn chat_template(meta: &Metadata<'_>) -> Result<Option<ChatTemplate>, SkillError> {
    let Some(source) = meta.string("tokenizer.chat_template")? else {
        return Ok(None);
    };
    let tokens = meta.strings("tokenizer.ggml.tokens")?.unwrap_or_default();
    let token = |key: &str| -> Result<Option<String>, SkillError> {
        Ok(meta
            .u32(key)?
            .and_then(|id| tokens.get(id as usize))
            .map(|t| (*t).to_owned()))
    };
    Ok(Some(ChatTemplate::new(
        source,
        token("tokenizer.ggml.bos_token_id")?,
        token("tokenizer.ggml.eos_token_id")?,
    )))
}
