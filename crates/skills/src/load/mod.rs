//! Loading a model, the part every skill shares: `config.json` read and
//! patched, its family looked up in the family table, the tokenizer,
//! processor and generation config read, and every file read recorded for
//! the answer's `files`; then the network built on the first backend of
//! the fallback chain that can hold it ([`backend_chain`]), from its ONNX
//! graph or its safetensors weights ([`graph_or_weights`]).

pub(crate) mod backend_chain;
pub mod contained;
pub(crate) mod graph_or_weights;
pub(crate) mod onnx_graph;
pub(crate) mod patches;
pub(crate) mod weights;

use crate::families::Family;
use crate::registry::family_for_config;
use crate::{SkillError, SkillKind};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{FileKind, LoadError, Loader, ModelRef, ResolvedFile};
use ipfs_accelerate_models::ModelError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokenizers::Tokenizer;

/// What every loaded model carries: its name, the backend that really runs
/// it, and every file read with the layer that served it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The model as given (`org/name`, a folder, `ipfs://…`).
    pub name: String,
    /// The backend that runs it.
    pub backend: BackendKind,
    /// Every file loaded, with the layer that served it.
    pub files: Vec<ResolvedFile>,
}

/// What every skill offers the same way: `load` (open the model's files
/// for `$kind`, whose models are "`$what`" in the error for a model of
/// another task, then the skill's own `from_files`), and the `name()`,
/// `backend()` and `files()` of its [`Loaded`] field `loaded`.
macro_rules! skill_api {
    ($skill:ty, $kind:expr, $what:literal) => {
        impl $skill {
            /// Loads `model` through `loader` on the first backend of the
            /// chain for `backend` that can hold it.
            pub fn load(
                loader: &ipfs_accelerate_loader::Loader,
                model: &ipfs_accelerate_loader::ModelRef,
                backend: ipfs_accelerate_backends::BackendKind,
            ) -> Result<Self, $crate::SkillError> {
                let files = $crate::load::ModelFiles::open(loader, model, $kind, $what)?;
                Self::from_files(files, backend)
            }

            /// The model as given.
            pub fn name(&self) -> &str {
                &self.loaded.name
            }

            /// The backend that really runs this model.
            pub fn backend(&self) -> ipfs_accelerate_backends::BackendKind {
                self.loaded.backend
            }

            /// Every file loaded, with the layer that served it.
            pub fn files(&self) -> &[ipfs_accelerate_loader::ResolvedFile] {
                &self.loaded.files
            }
        }
    };
}
pub(crate) use skill_api;

/// A model being loaded: its patched config, its family, and the files
/// read so far.
pub(crate) struct ModelFiles<'a> {
    pub(crate) loader: &'a Loader,
    pub(crate) model: &'a ModelRef,
    /// The model as given, for messages.
    pub(crate) name: String,
    /// `config.json` with the config patches applied.
    pub(crate) config: Value,
    /// Its row of the family table.
    pub(crate) family: &'static Family,
    /// Every file read so far.
    pub(crate) files: Vec<ResolvedFile>,
}

impl<'a> ModelFiles<'a> {
    /// Reads `model`'s `config.json`, applies the config patches (older
    /// transformers' key names, renamed as transformers would) and checks
    /// that `skill` runs its family; otherwise the error says the model is
    /// not `what` (e.g. "a causal language model").
    pub(crate) fn open(
        loader: &'a Loader,
        model: &'a ModelRef,
        skill: SkillKind,
        what: &str,
    ) -> Result<Self, SkillError> {
        let files = loader.from_pretrained(model, FileKind::Config)?;
        let config: Value = loader.read_json(model, &files[0])?;
        let name = model.to_string();
        let config = patches::patch_config(loader, &name, config)?;
        let family = family_for_config(&name, &config)?;
        if family.task.skill() != skill {
            return Err(SkillError::InvalidInput(format!(
                "model '{name}' is not {what} (use the command for its task)"
            )));
        }
        Ok(Self {
            loader,
            model,
            name,
            config,
            family,
            files,
        })
    }

    /// `config.json` as the family's config type.
    pub(crate) fn parse<T: DeserializeOwned + ipfs_accelerate_models::CheckConfig>(
        &self,
    ) -> Result<T, SkillError> {
        ipfs_accelerate_models::parse_config(&self.config).map_err(|e| self.model_error(e))
    }

    /// Reads `tokenizer.json` (and records the tokenizer's files).
    pub(crate) fn tokenizer(&mut self) -> Result<Tokenizer, SkillError> {
        let files = self
            .loader
            .from_pretrained(self.model, FileKind::Tokenizer)?;
        let tokenizer = read_tokenizer(&self.name, &files[0].path)?;
        self.files.extend(files);
        Ok(tokenizer)
    }

    /// `generation_config.json` when the model has one.
    pub(crate) fn generation_config(&mut self) -> Result<Option<Value>, SkillError> {
        self.optional_json("generation_config.json")
    }

    /// The first file of `kind` (a processor or feature-extractor config),
    /// parsed.
    pub(crate) fn json<T: DeserializeOwned>(&mut self, kind: FileKind) -> Result<T, SkillError> {
        let files = self.loader.from_pretrained(self.model, kind)?;
        let value = self.loader.read_json(self.model, &files[0])?;
        self.files.extend(files);
        Ok(value)
    }

    /// `file` parsed when the model has it (recorded once, even when an
    /// earlier step, such as the tokenizer's, already fetched it).
    pub(crate) fn optional_json(&mut self, file: &str) -> Result<Option<Value>, SkillError> {
        let Some(found) = self.loader.optional_file(self.model, file)? else {
            return Ok(None);
        };
        let value = self.loader.read_json(self.model, &found)?;
        if !self.files.iter().any(|f| f.file == found.file) {
            self.files.push(found);
        }
        Ok(Some(value))
    }

    /// A required file, parsed.
    pub(crate) fn required_json(&mut self, file: &str) -> Result<Value, SkillError> {
        let found = self.loader.file(self.model, file)?;
        let value = self.loader.read_json(self.model, &found)?;
        self.files.push(found);
        Ok(value)
    }

    /// The model's safetensors weights (fetched, recorded).
    pub(crate) fn weight_files(&mut self) -> Result<Vec<ResolvedFile>, SkillError> {
        let files = self.loader.from_pretrained(self.model, FileKind::Weights)?;
        self.files.extend(files.iter().cloned());
        Ok(files)
    }

    /// `file` of this model is unusable.
    pub(crate) fn malformed(&self, file: &str, reason: impl std::fmt::Display) -> SkillError {
        weights::malformed(&self.name, file, reason)
    }

    /// A network's error while loading, named after this model: config
    /// problems are a malformed `config.json`, tensor problems unusable
    /// weights.
    pub(crate) fn model_error(&self, err: ModelError) -> SkillError {
        model_error(&self.name, err)
    }

    /// The family's row names another task than the skill loading it
    /// ([`Self::open`] checks the skill, so this is a table mistake).
    pub(crate) fn wrong_task(&self) -> SkillError {
        SkillError::Unsupported {
            model: self.name.clone(),
            found: format!("model_type '{}'", self.family.model_type),
            supported: crate::registry::supported_for(self.family.task.skill()),
        }
    }

    /// Done: the model's name, the backend that runs it and the files read.
    pub(crate) fn finish(self, backend: BackendKind) -> Loaded {
        Loaded {
            name: self.name,
            backend,
            files: self.files,
        }
    }
}

/// Reads a `tokenizer.json` at `path` of `model`.
pub(crate) fn read_tokenizer(model: &str, path: &std::path::Path) -> Result<Tokenizer, SkillError> {
    let error = |source: tokenizers::Error| SkillError::Tokenizer {
        model: model.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| error(Box::new(e)))?;
    tokenizer_from_bytes(&bytes).map_err(error)
}

/// A tokenizer from `tokenizer.json` bytes. The syntax is checked first
/// (the tokenizers crate panics on a syntax error inside some sections) and
/// any other panic of that crate is contained and returned as an error.
pub(crate) fn tokenizer_from_bytes(bytes: &[u8]) -> Result<Tokenizer, tokenizers::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)?;
    let failed = |panic: String| format!("the tokenizers library failed on it: {panic}");
    let tokenizer = contained::contain(|| Tokenizer::from_bytes(bytes)).map_err(failed)??;
    // Some inconsistencies (a post-processor template naming a special
    // token it does not define) panic only when encoding: one probe finds
    // them here, at load.
    contained::contain(|| tokenizer.encode("a", true).map(drop)).map_err(failed)??;
    Ok(tokenizer)
}

/// [`ModelFiles::model_error`] for code that only has the model's name.
pub(crate) fn model_error(model: &str, err: ModelError) -> SkillError {
    match err {
        ModelError::Config(_) | ModelError::ConfigJson { .. } => {
            SkillError::Load(LoadError::Malformed {
                model: model.to_owned(),
                file: "config.json".to_owned(),
                reason: weights::one_line(&err.to_string()),
            })
        }
        ModelError::Preprocess(_) => weights::malformed(model, "preprocessor_config.json", err),
        ModelError::Input(reason) => SkillError::InvalidInput(reason),
        ModelError::Tensor(_) | ModelError::UntiedHead { .. } => SkillError::Weights {
            model: model.to_owned(),
            source: Box::new(err),
        },
    }
}
