//! The sentence-transformers files: `modules.json`, the pooling folder,
//! `2_Normalize`, `sentence_bert_config.json`.

use super::Pooling;
use crate::SkillError;
use ipfs_accelerate_loader::{Loader, ModelRef, ResolvedFile};
use serde::Deserialize;

/// What the sentence-transformers files say about a model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SentenceConfig {
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: Option<usize>,
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

/// Reads the files; a model without `modules.json` gets mean pooling + L2.
pub(crate) fn read(loader: &Loader, model: &ModelRef) -> Result<SentenceConfig, SkillError> {
    let mut files = Vec::new();
    let mut config = SentenceConfig {
        pooling: Pooling::default(),
        normalize: true,
        max_seq_length: None,
        files: Vec::new(),
    };
    if let Some(file) = loader.optional_file(model, "modules.json")? {
        let modules: Vec<Module> = loader.read_json(model, &file)?;
        files.push(file);
        config.normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
        if let Some(pooling) = modules.iter().find(|m| m.kind.ends_with(".Pooling")) {
            let name = if pooling.path.is_empty() {
                "config.json".to_owned()
            } else {
                format!("{}/config.json", pooling.path.trim_end_matches('/'))
            };
            let file = loader.file(model, &name)?;
            config.pooling = loader.read_json(model, &file)?;
            files.push(file);
        }
    }
    if let Some(file) = loader.optional_file(model, "sentence_bert_config.json")? {
        let st: SentenceBertConfig = loader.read_json(model, &file)?;
        config.max_seq_length = st.max_seq_length;
        files.push(file);
    }
    config.files = files;
    Ok(config)
}
