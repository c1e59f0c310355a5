//! `config.json` -> skill.

use crate::SkillError;
use ipfs_accelerate_loader::{FileKind, Loader, ModelRef, ResolvedFile};
use serde_json::Value;

/// The skills this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkillKind {
    /// Sentence embeddings from a BERT-family encoder.
    TextEmbedding,
    /// Text generation with a decoder-only language model.
    TextGeneration,
    /// Text-to-text generation with an encoder-decoder model.
    Text2Text,
    /// Speech to text (Whisper, wav2vec2 CTC).
    SpeechRecognition,
    /// Text–media similarity with a dual encoder (CLIP).
    Similarity,
    /// Text generation about an image (LLaVA, LLaVA-NeXT).
    ImageToText,
}

/// `(model_type, skill)`: every model type this build runs.
pub const MODEL_TYPES: &[(&str, SkillKind)] = &[
    ("bert", SkillKind::TextEmbedding),
    ("gpt2", SkillKind::TextGeneration),
    ("opt", SkillKind::TextGeneration),
    ("llama", SkillKind::TextGeneration),
    ("t5", SkillKind::Text2Text),
    ("whisper", SkillKind::SpeechRecognition),
    ("wav2vec2", SkillKind::SpeechRecognition),
    ("clip", SkillKind::Similarity),
    ("llava", SkillKind::ImageToText),
    ("llava_next", SkillKind::ImageToText),
    ("xclip", SkillKind::Similarity),
    ("clap", SkillKind::Similarity),
];

/// `(architectures prefix, skill)`: for configs without a known `model_type`.
const ARCHITECTURES: &[(&str, SkillKind)] = &[
    ("Bert", SkillKind::TextEmbedding),
    ("GPT2", SkillKind::TextGeneration),
    ("OPT", SkillKind::TextGeneration),
    ("Llama", SkillKind::TextGeneration),
    ("T5", SkillKind::Text2Text),
    ("Whisper", SkillKind::SpeechRecognition),
    ("Wav2Vec2", SkillKind::SpeechRecognition),
    ("CLIPModel", SkillKind::Similarity),
    ("LlavaNext", SkillKind::ImageToText),
    ("Llava", SkillKind::ImageToText),
    ("XCLIPModel", SkillKind::Similarity),
    ("ClapModel", SkillKind::Similarity),
];

impl SkillKind {
    /// The name endpoints report.
    pub fn name(self) -> &'static str {
        match self {
            Self::TextEmbedding => "text_embedding",
            Self::TextGeneration => "text_generation",
            Self::Text2Text => "text2text",
            Self::SpeechRecognition => "speech_recognition",
            Self::Similarity => "similarity",
            Self::ImageToText => "image_to_text",
        }
    }
}

/// The model types one skill runs.
pub fn supported_for(skill: SkillKind) -> Vec<&'static str> {
    MODEL_TYPES
        .iter()
        .filter(|(_, k)| *k == skill)
        .map(|(name, _)| *name)
        .collect()
}

/// Reads `model`'s `config.json` through `loader` and picks its skill.
pub fn skill_for_model(loader: &Loader, model: &ModelRef) -> Result<SkillKind, SkillError> {
    let files = loader.from_pretrained(model, FileKind::Config)?;
    let config: Value = loader.read_json(model, &files[0])?;
    let config = crate::model_patches::patch_config(loader, &model.to_string(), config)?;
    skill_for_config(&model.to_string(), &config)
}

/// Reads `model`'s `config.json` and checks that `skill` runs it; otherwise
/// the error says the model is not `what` (e.g. "a causal language model").
/// Returns the config (with the config patches applied) and the file read,
/// first of the files a skill loads.
pub(crate) fn config_for_skill(
    loader: &Loader,
    model: &ModelRef,
    skill: SkillKind,
    what: &str,
) -> Result<(Value, Vec<ResolvedFile>), SkillError> {
    let files = loader.from_pretrained(model, FileKind::Config)?;
    let config: Value = loader.read_json(model, &files[0])?;
    let name = model.to_string();
    // Older transformers' key names, renamed as transformers would.
    let config = crate::model_patches::patch_config(loader, &name, config)?;
    if skill_for_config(&name, &config)? != skill {
        return Err(SkillError::InvalidInput(format!(
            "model '{name}' is not {what} (use the command for its task)"
        )));
    }
    Ok((config, files))
}

/// Picks the skill for a parsed `config.json`, by `model_type` and then by
/// `architectures`.
pub fn skill_for_config(model: &str, config: &Value) -> Result<SkillKind, SkillError> {
    let model_type = config.get("model_type").and_then(Value::as_str);
    if let Some(kind) = model_type.and_then(|mt| {
        MODEL_TYPES
            .iter()
            .find(|(name, _)| *name == mt)
            .map(|(_, k)| *k)
    }) {
        return Ok(kind);
    }
    let architectures: Vec<&str> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some((_, kind)) = ARCHITECTURES
        .iter()
        .find(|(prefix, _)| architectures.iter().any(|a| a.starts_with(prefix)))
    {
        return Ok(*kind);
    }
    let found = match (model_type, architectures.is_empty()) {
        (Some(mt), true) => format!("model_type '{mt}'"),
        (Some(mt), false) => format!("model_type '{mt}' ({})", architectures.join(", ")),
        (None, false) => architectures.join(", "),
        (None, true) => "(config.json has neither model_type nor architectures)".to_owned(),
    };
    Err(SkillError::Unsupported {
        model: model.to_owned(),
        found,
        supported: MODEL_TYPES.iter().map(|(name, _)| *name).collect(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_and_rejects() {
        assert_eq!(
            skill_for_config("m", &json!({"model_type": "bert"})).unwrap(),
            SkillKind::TextEmbedding
        );
        let err = skill_for_config("m", &json!({"model_type": "mamba"})).unwrap_err();
        assert!(
            err.to_string()
                .contains("supported: bert, gpt2, opt, llama, t5"),
            "{err}"
        );
        assert_eq!(
            skill_for_config("m", &json!({"architectures": ["LlamaForCausalLM"]})).unwrap(),
            SkillKind::TextGeneration
        );
    }
}
