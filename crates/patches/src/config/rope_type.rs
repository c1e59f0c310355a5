//! `rope_scaling.type` -> `rope_scaling.rope_type`. The key was `type` until
//! transformers 4.43 introduced `rope_type`; every version since copies a
//! `type` into `rope_type` when it reads a config ("BC: if there is a 'type'
//! field, copy it it to 'rope_type'", `models/llama/configuration_llama.py`,
//! and `rope_scaling.get("rope_type", rope_scaling.get("type"))` throughout
//! `modeling_rope_utils.py`). Done on every version, like transformers.

use crate::{Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, VersionGate};
use serde_json::Value;

/// Copies `rope_scaling.type` into `rope_scaling.rope_type` (keeping `type`,
/// as transformers does).
#[derive(Debug)]
pub struct RopeScalingType {
    info: PatchInfo,
}

impl RopeScalingType {
    pub fn new() -> Self {
        Self {
            info: PatchInfo {
                name: "config.rope_scaling_type_to_rope_type".to_owned(),
                kind: PatchKind::RuntimeFix,
                target: super::TARGET.to_owned(),
                gate: VersionGate::any(),
                description: "copies rope_scaling.type into rope_scaling.rope_type (the key before transformers 4.43)".to_owned(),
                source: "transformers/models/llama/configuration_llama.py: LlamaConfig.__init__ (BC: copy 'type' to 'rope_type'); modeling_rope_utils.py".to_owned(),
            },
        }
    }
}

impl Default for RopeScalingType {
    fn default() -> Self {
        Self::new()
    }
}

impl Patch<Value> for RopeScalingType {
    fn info(&self) -> &PatchInfo {
        &self.info
    }

    fn matches(&self, config: &Value, _: &PatchContext) -> bool {
        let Some(scaling) = config.get("rope_scaling").and_then(Value::as_object) else {
            return false;
        };
        scaling
            .get("type")
            .is_some_and(|t| scaling.get("rope_type") != Some(t))
    }

    fn rewrite(&self, editor: &mut Editor<'_, Value>, _: &PatchContext) -> Result<(), PatchError> {
        let legacy = editor
            .target()
            .pointer("/rope_scaling/type")
            .cloned()
            .unwrap_or(Value::Null);
        editor.set("/rope_scaling/rope_type", legacy)
    }
}
