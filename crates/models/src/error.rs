//! Why a network could not be built or run.

/// Why a network could not be built from its config and weights, or could
/// not take an input. The skill that loads the model adds the model's name.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `config.json` asks for a network this family cannot build (sizes
    /// that do not divide, an unknown scaling type, ...).
    #[error("{0}")]
    Config(String),
    /// `config.json` does not parse as the family's config.
    #[error("{source}")]
    ConfigJson {
        /// The parse error (names the key).
        #[source]
        source: serde_json::Error,
    },
    /// A processor config that goes with the network is unusable.
    #[error(transparent)]
    Preprocess(#[from] ipfs_accelerate_media::PreprocessError),
    /// A tensor the config asks for is missing or misshapen (while
    /// loading), or a tensor operation failed (while running).
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// `tie_word_embeddings` is false and `lm_head.weight` is unusable.
    #[error("tie_word_embeddings is false but lm_head.weight is unusable: {source}")]
    UntiedHead {
        /// Why the tensor is unusable.
        #[source]
        source: candle_core::Error,
    },
    /// The input does not fit the network (too few video frames, ...).
    #[error("{0}")]
    Input(String),
}

/// Parses `config.json` (already patched) into a family's config type and
/// checks its structural numbers ([`crate::CheckConfig`]).
pub fn parse_config<T: serde::de::DeserializeOwned + crate::CheckConfig>(
    config: &serde_json::Value,
) -> Result<T, ModelError> {
    let parsed: T = serde_json::from_value(config.clone())
        .map_err(|source| ModelError::ConfigJson { source })?;
    parsed.check()?;
    Ok(parsed)
}
