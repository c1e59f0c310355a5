//! `torch_dtype` -> `dtype`: transformers 4.56 renamed the config key;
//! configs saved before hold `torch_dtype`, which the new code reads as
//! `dtype` (`configuration_utils.py`, `PretrainedConfig.__init__`: "BC for
//! the `torch_dtype` argument instead of the simpler `dtype`").

use crate::{pointer, Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, VersionGate};
use serde_json::Value;

/// Renames a top-level `torch_dtype` to `dtype` when `dtype` is absent.
#[derive(Debug)]
pub struct TorchDtype {
    info: PatchInfo,
}

impl TorchDtype {
    pub fn new() -> Self {
        Self {
            info: PatchInfo {
                name: "config.torch_dtype_to_dtype".to_owned(),
                kind: PatchKind::RuntimeFix,
                target: super::TARGET.to_owned(),
                gate: VersionGate::parse("transformers < 4.56").unwrap_or_default(),
                description: "renames torch_dtype to dtype (renamed in transformers 4.56)".to_owned(),
                source: "transformers/configuration_utils.py: PretrainedConfig.__init__ (BC for torch_dtype)".to_owned(),
            },
        }
    }
}

impl Default for TorchDtype {
    fn default() -> Self {
        Self::new()
    }
}

impl Patch<Value> for TorchDtype {
    fn info(&self) -> &PatchInfo {
        &self.info
    }

    fn matches(&self, config: &Value, _: &PatchContext) -> bool {
        config.get("torch_dtype").is_some() && config.get("dtype").is_none()
    }

    fn rewrite(&self, editor: &mut Editor<'_, Value>, _: &PatchContext) -> Result<(), PatchError> {
        editor.rename(&pointer(&["torch_dtype"]), &pointer(&["dtype"]))
    }
}
