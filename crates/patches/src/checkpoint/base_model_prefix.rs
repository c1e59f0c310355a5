//! A missing or extra base-model prefix. transformers saves a task model's
//! base under `base_model_prefix` (`bert.`, `model.`) and loads a base model
//! from a task checkpoint (dropping the prefix) or a task model from a base
//! checkpoint (adding it) (`modeling_utils.py`, `_load_pretrained_model`:
//! `loading_base_model_from_task_state_dict` /
//! `loading_task_model_from_base_state_dict`). Our models load one layout:
//! BERT without prefix (the sentence-transformers layout), LLaMA with
//! `model.` (`LlamaForCausalLM`); these rewrites bring the other one to it.

use super::Tensors;
use crate::{
    Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, TensorLike, VersionGate,
};

/// Which way the prefix moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixDirection {
    /// The loader expects no prefix: strip it from the base model's tensors.
    Strip,
    /// The loader expects the prefix: add it to every tensor but the task
    /// head's.
    Add,
}

/// Moves `prefix` for checkpoints of one `model_type`.
#[derive(Debug)]
pub struct BaseModelPrefix {
    info: PatchInfo,
    model_type: &'static str,
    prefix: &'static str,
    direction: PrefixDirection,
    /// A tensor every base checkpoint of this type holds (without prefix).
    marker: &'static str,
    /// Task-head tensors that stay at the root (`lm_head.`).
    head: &'static [&'static str],
}

impl BaseModelPrefix {
    /// BERT: `bert.embeddings...` (saved from `BertForMaskedLM` and the like)
    /// -> `embeddings...` (`BertModel`).
    pub fn bert() -> Self {
        Self::new(
            "bert",
            "bert.",
            PrefixDirection::Strip,
            "embeddings.word_embeddings.weight",
            &[],
        )
    }

    /// LLaMA: `layers...` (saved from `LlamaModel`) -> `model.layers...`
    /// (`LlamaForCausalLM`); `lm_head.*` stays.
    pub fn llama() -> Self {
        Self::new(
            "llama",
            "model.",
            PrefixDirection::Add,
            "embed_tokens.weight",
            &["lm_head."],
        )
    }

    fn new(
        model_type: &'static str,
        prefix: &'static str,
        direction: PrefixDirection,
        marker: &'static str,
        head: &'static [&'static str],
    ) -> Self {
        let (verb, name) = match direction {
            PrefixDirection::Strip => ("strips an extra", "strip"),
            PrefixDirection::Add => ("adds a missing", "add"),
        };
        let bare = prefix.trim_end_matches('.');
        Self {
            info: PatchInfo {
                name: format!("checkpoint.{model_type}.{name}_{bare}_prefix"),
                kind: PatchKind::ModelRewrite,
                target: super::TARGET.to_owned(),
                gate: VersionGate::any(),
                description: format!(
                    "{model_type}: {verb} '{prefix}' prefix on the base model's tensors"
                ),
                source:
                    "transformers/modeling_utils.py: _load_pretrained_model (base_model_prefix)"
                        .to_owned(),
            },
            model_type,
            prefix,
            direction,
            marker,
            head,
        }
    }

    /// (old, new) names, when the checkpoint has the other layout.
    fn renames<T>(&self, tensors: &Tensors<T>, ctx: &PatchContext) -> Vec<(String, String)> {
        if ctx.model_type() != Some(self.model_type) {
            return Vec::new();
        }
        let prefixed_marker = format!("{}{}", self.prefix, self.marker);
        let mut out: Vec<(String, String)> = match self.direction {
            PrefixDirection::Strip => {
                if !tensors.contains_key(&prefixed_marker) || tensors.contains_key(self.marker) {
                    return Vec::new();
                }
                tensors
                    .keys()
                    .filter_map(|k| {
                        k.strip_prefix(self.prefix)
                            .map(|s| (k.clone(), s.to_owned()))
                    })
                    .collect()
            }
            PrefixDirection::Add => {
                if !tensors.contains_key(self.marker) || tensors.contains_key(&prefixed_marker) {
                    return Vec::new();
                }
                tensors
                    .keys()
                    .filter(|k| !self.head.iter().any(|h| k.starts_with(h)))
                    .map(|k| (k.clone(), format!("{}{k}", self.prefix)))
                    .collect()
            }
        };
        out.retain(|(_, new)| !tensors.contains_key(new));
        out.sort();
        out
    }
}

impl<T: TensorLike> Patch<Tensors<T>> for BaseModelPrefix {
    fn info(&self) -> &PatchInfo {
        &self.info
    }

    fn matches(&self, tensors: &Tensors<T>, ctx: &PatchContext) -> bool {
        !self.renames(tensors, ctx).is_empty()
    }

    fn rewrite(
        &self,
        editor: &mut Editor<'_, Tensors<T>>,
        ctx: &PatchContext,
    ) -> Result<(), PatchError> {
        for (old, new) in self.renames(editor.target(), ctx) {
            editor.rename(&old, &new)?;
        }
        Ok(())
    }
}
