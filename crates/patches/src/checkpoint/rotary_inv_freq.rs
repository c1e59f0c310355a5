//! `rotary_emb.inv_freq` buffers: LLaMA checkpoints saved before
//! transformers 4.31 hold each layer's rotary `inv_freq` buffer (the buffer
//! became non-persistent in 4.31). It is computed from the config, so
//! transformers ignores it on load ("Old checkpoints may have keys for
//! rotary_emb.inv_freq for each layer", `modeling_utils.py`,
//! `_load_pretrained_model`); this patch drops it.

use super::Tensors;
use crate::{
    Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, TensorLike, VersionGate,
};

/// Drops 1-D `*rotary_emb.inv_freq` tensors.
#[derive(Debug)]
pub struct RotaryInvFreq {
    info: PatchInfo,
}

impl RotaryInvFreq {
    pub fn new() -> Self {
        Self {
            info: PatchInfo {
                name: "checkpoint.rotary_emb_inv_freq".to_owned(),
                kind: PatchKind::ModelRewrite,
                target: super::TARGET.to_owned(),
                gate: VersionGate::parse("transformers < 4.31").unwrap_or_default(),
                description: "drops the rotary_emb.inv_freq buffers old LLaMA checkpoints hold (recomputed from the config)".to_owned(),
                source: "transformers/modeling_utils.py: _load_pretrained_model (rotary_emb.inv_freq unexpected keys)".to_owned(),
            },
        }
    }
}

impl Default for RotaryInvFreq {
    fn default() -> Self {
        Self::new()
    }
}

fn buffers<T: TensorLike>(tensors: &Tensors<T>) -> Vec<String> {
    let mut names: Vec<String> = tensors
        .iter()
        // A buffer is a vector (head_dim / 2); anything else is not it.
        .filter(|(name, t)| name.ends_with("rotary_emb.inv_freq") && t.shape().len() == 1)
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

impl<T: TensorLike> Patch<Tensors<T>> for RotaryInvFreq {
    fn info(&self) -> &PatchInfo {
        &self.info
    }

    fn matches(&self, tensors: &Tensors<T>, _: &PatchContext) -> bool {
        !buffers(tensors).is_empty()
    }

    fn rewrite(
        &self,
        editor: &mut Editor<'_, Tensors<T>>,
        _: &PatchContext,
    ) -> Result<(), PatchError> {
        for name in buffers(editor.target()) {
            editor.remove(&name);
        }
        Ok(())
    }
}
