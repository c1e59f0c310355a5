//! The patches crate's config and checkpoint rewrites on the loading path:
//! every skill's `config.json` and tensor map go through them, so checkpoints
//! saved by older transformers versions load without code changes. On unless
//! `TRANSFORMERS_PATCH_DISABLE` or the loader's `patches(false)` says no;
//! rewrites are dumped where the loader's `dump_rewriting` says.

use super::weights::one_line;
use crate::SkillError;
use candle_core::Tensor;
use ipfs_accelerate_loader::{LoadError, Loader};
use ipfs_accelerate_patches::{checkpoint, config, PatchContext, PatchSet};
use serde_json::Value;
use std::collections::HashMap;

/// `config` with the config patches applied.
pub(crate) fn patch_config(
    loader: &Loader,
    model: &str,
    mut json: Value,
) -> Result<Value, SkillError> {
    let set = PatchSet::builder()
        .patches(config::builtin())
        .enabled(loader.patches_enabled())
        .dump_dir(loader.dump_rewriting().map(ToOwned::to_owned))
        .build();
    let ctx = PatchContext::from_config(&json);
    let applied = set
        .apply(&mut json, &ctx)
        .map_err(|e| {
            SkillError::Load(LoadError::Malformed {
                model: model.to_owned(),
                file: "config.json".to_owned(),
                reason: one_line(&e.to_string()),
            })
        })?
        .keep();
    if !applied.is_empty() {
        tracing::info!(model, patches = ?applied, "config.json patched");
    }
    Ok(json)
}

/// Applies the checkpoint patches to `tensors` of a model with `config`.
pub(crate) fn patch_tensors(
    loader: &Loader,
    model: &str,
    config: &Value,
    tensors: &mut HashMap<String, Tensor>,
) -> Result<(), SkillError> {
    let set = PatchSet::builder()
        .patches(checkpoint::builtin())
        .enabled(loader.patches_enabled())
        .dump_dir(loader.dump_rewriting().map(ToOwned::to_owned))
        .build();
    let applied = set
        .apply(tensors, &PatchContext::from_config(config))
        .map_err(|e| SkillError::Weights {
            model: model.to_owned(),
            source: Box::new(e),
        })?
        .keep();
    if !applied.is_empty() {
        tracing::info!(model, patches = ?applied, "checkpoint patched");
    }
    Ok(())
}
