//! A sentence-transformers model's own files: `modules.json` (which modules
//! run, and where the pooling module's folder is), the pooling module's
//! `config.json`, `2_Normalize`, `sentence_bert_config.json`. Read here once
//! for every user (embeddings, the ONNX exporter).

use crate::{LoadError, Loader, ModelRef, ResolvedFile};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// What a sentence-transformers model's files say about its head.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceTransformersFiles<P> {
    /// The pooling module's `config.json`, parsed, when `modules.json` names one
    /// (`None`: the caller's default, mean pooling).
    pub pooling: Option<P>,
    /// `modules.json` ends with a `Normalize` module (true without a
    /// `modules.json`: what the embed command does for a plain encoder).
    pub normalize: bool,
    /// `sentence_bert_config.json`'s `max_seq_length`.
    pub max_seq_length: Option<usize>,
    /// The files read.
    pub files: Vec<ResolvedFile>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl Loader {
    /// Reads `model`'s sentence-transformers files (all optional), the
    /// pooling module's config as `P`.
    pub fn sentence_transformers<P: DeserializeOwned>(
        &self,
        model: &ModelRef,
    ) -> Result<SentenceTransformersFiles<P>, LoadError> {
        let mut out = SentenceTransformersFiles {
            pooling: None,
            normalize: true,
            max_seq_length: None,
            files: Vec::new(),
        };
        if let Some(file) = self.optional_file(model, "modules.json")? {
            let modules: Vec<Module> = self.read_json(model, &file)?;
            out.files.push(file);
            out.normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
            if let Some(pooling) = modules.iter().find(|m| m.kind.ends_with(".Pooling")) {
                let name = if pooling.path.is_empty() {
                    "config.json".to_owned()
                } else {
                    format!("{}/config.json", pooling.path.trim_end_matches('/'))
                };
                let file = self.file(model, &name)?;
                out.pooling = Some(self.read_json(model, &file)?);
                out.files.push(file);
            }
        }
        if let Some(file) = self.optional_file(model, "sentence_bert_config.json")? {
            let config: SentenceBertConfig = self.read_json(model, &file)?;
            out.max_seq_length = config.max_seq_length;
            out.files.push(file);
        }
        Ok(out)
    }
}
