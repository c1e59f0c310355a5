//! GPT-2's config names: `GPT2Config.attribute_map` maps `hidden_size`,
//! `max_position_embeddings`, `num_attention_heads` and `num_hidden_layers`
//! to the original OpenAI names `n_embd`, `n_positions`, `n_head`, `n_layer`
//! (`models/gpt2/configuration_gpt2.py`). A config written with the generic
//! names loads in transformers, which stores them under the GPT-2 names (and
//! saves only those); this rewrite does the same on the JSON.

use crate::{pointer, Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, VersionGate};
use serde_json::Value;

/// (generic name, GPT-2 name), from `GPT2Config.attribute_map`.
const ATTRIBUTE_MAP: [(&str, &str); 4] = [
    ("hidden_size", "n_embd"),
    ("max_position_embeddings", "n_positions"),
    ("num_attention_heads", "n_head"),
    ("num_hidden_layers", "n_layer"),
];

/// Moves generic names to GPT-2's for `model_type: gpt2`.
#[derive(Debug)]
pub struct Gpt2AttributeMap {
    info: PatchInfo,
}

impl Gpt2AttributeMap {
    pub fn new() -> Self {
        Self {
            info: PatchInfo {
                name: "config.gpt2_attribute_map".to_owned(),
                kind: PatchKind::RuntimeFix,
                target: super::TARGET.to_owned(),
                gate: VersionGate::any(),
                description: "gpt2: hidden_size/max_position_embeddings/num_attention_heads/num_hidden_layers -> n_embd/n_positions/n_head/n_layer".to_owned(),
                source: "transformers/models/gpt2/configuration_gpt2.py: GPT2Config.attribute_map".to_owned(),
            },
        }
    }
}

impl Default for Gpt2AttributeMap {
    fn default() -> Self {
        Self::new()
    }
}

impl Patch<Value> for Gpt2AttributeMap {
    fn info(&self) -> &PatchInfo {
        &self.info
    }

    fn matches(&self, config: &Value, ctx: &PatchContext) -> bool {
        ctx.model_type() == Some("gpt2")
            && ATTRIBUTE_MAP
                .iter()
                .any(|(generic, _)| config.get(generic).is_some())
    }

    fn rewrite(&self, editor: &mut Editor<'_, Value>, _: &PatchContext) -> Result<(), PatchError> {
        for (generic, gpt2) in ATTRIBUTE_MAP {
            let Some(value) = editor.target().get(generic).cloned() else {
                continue;
            };
            // transformers sets the mapped attribute after the GPT-2 one,
            // so the generic name wins when both are present.
            editor.remove(&pointer(&[generic]));
            editor.set(&pointer(&[gpt2]), value)?;
        }
        Ok(())
    }
}
