//! TF-era LayerNorm names: BERT-family checkpoints converted from
//! TensorFlow name LayerNorm parameters `gamma` / `beta`; transformers
//! renames them to `weight` / `bias` on load, whatever the version
//! (`modeling_utils.py`, `PreTrainedModel._fix_state_dict_key_on_load`).

use super::Tensors;
use crate::{
    Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, TensorLike, VersionGate,
};

/// `*LayerNorm.gamma` -> `*LayerNorm.weight`, `*LayerNorm.beta` -> `*LayerNorm.bias`.
#[derive(Debug)]
pub struct LayerNormGammaBeta {
    info: PatchInfo,
}

impl LayerNormGammaBeta {
    pub fn new() -> Self {
        Self {
            info: PatchInfo {
                name: "checkpoint.layer_norm_gamma_beta".to_owned(),
                kind: PatchKind::ModelRewrite,
                target: super::TARGET.to_owned(),
                gate: VersionGate::any(),
                description: "renames TF-era LayerNorm.gamma/beta tensors to LayerNorm.weight/bias"
                    .to_owned(),
                source:
                    "transformers/modeling_utils.py: PreTrainedModel._fix_state_dict_key_on_load"
                        .to_owned(),
            },
        }
    }
}

impl Default for LayerNormGammaBeta {
    fn default() -> Self {
        Self::new()
    }
}

/// The new name of a TF-era LayerNorm tensor, if `name` is one.
fn renamed(name: &str) -> Option<String> {
    for (old, new) in [
        ("LayerNorm.gamma", "LayerNorm.weight"),
        ("LayerNorm.beta", "LayerNorm.bias"),
    ] {
        if let Some(stem) = name.strip_suffix(old) {
            return Some(format!("{stem}{new}"));
        }
    }
    None
}

/// Each TF-era name whose new name is free (the rename never overwrites).
fn renames<T>(tensors: &Tensors<T>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = tensors
        .keys()
        .filter_map(|name| renamed(name).map(|new| (name.clone(), new)))
        .filter(|(_, new)| !tensors.contains_key(new))
        .collect();
    out.sort();
    out
}

impl<T: TensorLike> Patch<Tensors<T>> for LayerNormGammaBeta {
    fn info(&self) -> &PatchInfo {
        &self.info
    }

    fn matches(&self, tensors: &Tensors<T>, _: &PatchContext) -> bool {
        !renames(tensors).is_empty()
    }

    fn rewrite(
        &self,
        editor: &mut Editor<'_, Tensors<T>>,
        _: &PatchContext,
    ) -> Result<(), PatchError> {
        for (old, new) in renames(editor.target()) {
            editor.rename(&old, &new)?;
        }
        Ok(())
    }
}
