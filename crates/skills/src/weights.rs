//! Reading safetensors weights into a `VarBuilder`.

use crate::{model_patches, SkillError};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ipfs_accelerate_loader::{Loader, ResolvedFile};
use serde_json::Value;
use std::collections::HashMap;

/// Loads every `.safetensors` file among `files` (shards merged) on `device`,
/// then applies the checkpoint patches `loader` allows for a model with
/// `config` (old tensor names renamed, stale buffers dropped).
/// A truncated or corrupt file is an error naming the file.
pub(crate) fn var_builder(
    loader: &Loader,
    model: &str,
    config: &Value,
    files: &[ResolvedFile],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, SkillError> {
    let mut tensors = HashMap::new();
    for file in files.iter().filter(|f| f.file.ends_with(".safetensors")) {
        let loaded = candle_core::safetensors::load(&file.path, device).map_err(|e| {
            SkillError::Weights {
                model: model.to_owned(),
                reason: format!("{}: {}", file.file, one_line(&e.to_string())),
            }
        })?;
        tensors.extend(loaded);
    }
    model_patches::patch_tensors(loader, model, config, &mut tensors)?;
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
}

/// Error texts from libraries can span lines; answers are one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A malformed model file, as a load error naming the file.
pub(crate) fn malformed(model: &str, file: &str, reason: impl std::fmt::Display) -> SkillError {
    SkillError::Load(ipfs_accelerate_loader::LoadError::Malformed {
        model: model.to_owned(),
        file: file.to_owned(),
        reason: one_line(&reason.to_string()),
    })
}
