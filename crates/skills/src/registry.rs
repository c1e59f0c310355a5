//! `config.json` -> skill.

use crate::families::{Family, FAMILIES};
use crate::SkillError;
use ipfs_accelerate_loader::{FileKind, Loader, ModelRef};
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
    FAMILIES
        .iter()
        .filter(|f| f.task.skill() == skill)
        .map(|f| f.model_type)
        .collect()
}

/// Every model type this build runs.
pub fn supported() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.model_type).collect()
}

/// Reads `model`'s `config.json` through `loader` and picks its skill.
pub fn skill_for_model(loader: &Loader, model: &ModelRef) -> Result<SkillKind, SkillError> {
    let files = loader.from_pretrained(model, FileKind::Config)?;
    let config: Value = loader.read_json(model, &files[0])?;
    let config = crate::load::patches::patch_config(loader, &model.to_string(), config)?;
    skill_for_config(&model.to_string(), &config)
}

/// Picks the skill for a parsed `config.json`, by `model_type` and then by
/// `architectures`.
pub fn skill_for_config(model: &str, config: &Value) -> Result<SkillKind, SkillError> {
    family_for_config(model, config).map(|f| f.task.skill())
}

/// The family of a parsed `config.json`, by `model_type` and then by
/// `architectures`.
pub(crate) fn family_for_config(
    model: &str,
    config: &Value,
) -> Result<&'static Family, SkillError> {
    let model_type = config.get("model_type").and_then(Value::as_str);
    if let Some(family) = model_type.and_then(|mt| FAMILIES.iter().find(|f| f.model_type == mt)) {
        return Ok(family);
    }
    let architectures: Vec<&str> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let by_architecture = FAMILIES
        .iter()
        .filter(|f| architectures.iter().any(|a| a.starts_with(f.architecture)))
        .max_by_key(|f| f.architecture.len());
    if let Some(family) = by_architecture {
        return Ok(family);
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
        supported: supported(),
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
        // The longest matching prefix wins, whatever the table's order.
        let next = json!({"architectures": ["LlavaNextForConditionalGeneration"]});
        assert_eq!(
            family_for_config("m", &next).unwrap().model_type,
            ipfs_accelerate_models::llava::NEXT_MODEL_TYPE
        );
    }
}
