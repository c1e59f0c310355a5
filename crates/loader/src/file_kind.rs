//! The Auto* kinds of `from_pretrained` and the files each one needs.

use serde::Serialize;

/// What `from_pretrained` is asked to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Model weights (`AutoModel`): safetensors, single or sharded.
    Weights,
    /// `AutoConfig`.
    Config,
    /// `AutoTokenizer`.
    Tokenizer,
    /// `AutoProcessor`.
    Processor,
    /// `AutoFeatureExtractor`.
    FeatureExtractor,
    /// `AutoImageProcessor`.
    ImageProcessor,
    /// `GenerationConfig`.
    GenerationConfig,
}

impl FileKind {
    /// Every kind, in the order `status` lists them.
    pub const ALL: [FileKind; 7] = [
        Self::Weights,
        Self::Config,
        Self::Tokenizer,
        Self::Processor,
        Self::FeatureExtractor,
        Self::ImageProcessor,
        Self::GenerationConfig,
    ];

    /// The name shown in `status` (`intercepted`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Weights => "weights",
            Self::Config => "config",
            Self::Tokenizer => "tokenizer",
            Self::Processor => "processor",
            Self::FeatureExtractor => "feature_extractor",
            Self::ImageProcessor => "image_processor",
            Self::GenerationConfig => "generation_config",
        }
    }

    /// Files of which the first one found is required (alternatives, in order).
    pub(crate) fn required(self) -> &'static [&'static str] {
        match self {
            Self::Weights => &["model.safetensors", "model.safetensors.index.json"],
            Self::Config => &["config.json"],
            Self::Tokenizer => &["tokenizer.json"],
            Self::Processor => &["processor_config.json", "preprocessor_config.json"],
            Self::FeatureExtractor | Self::ImageProcessor => &["preprocessor_config.json"],
            Self::GenerationConfig => &["generation_config.json"],
        }
    }

    /// Files loaded alongside when present.
    pub(crate) fn optional(self) -> &'static [&'static str] {
        match self {
            Self::Tokenizer => &["tokenizer_config.json", "special_tokens_map.json"],
            Self::Processor => &[
                "preprocessor_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
            ],
            _ => &[],
        }
    }
}
