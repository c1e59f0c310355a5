//! The patch abstraction: a name, a kind, a target, a version gate, a
//! content check, and a rewrite whose logged edits are its undo.

use crate::{undo, Edit, Editor, PatchError, PatchKind, Target, VersionGate, Versions};
use serde::Serialize;
use serde_json::Value;

/// What `patch list` shows about a patch.
#[derive(Debug, Clone, Serialize)]
pub struct PatchInfo {
    /// Unique, dotted: `checkpoint.layer_norm_gamma_beta`.
    pub name: String,
    /// What it changes.
    pub kind: PatchKind,
    /// What it rewrites: `config.json`, `model.safetensors tensors`, a file.
    pub target: String,
    /// When it may apply.
    pub gate: VersionGate,
    /// One line: what it does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where the behaviour it reproduces is defined (a transformers file).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// Class-name prefix -> `model_type`, for the model types patches name.
const ARCHITECTURE_PREFIXES: &[(&str, &str)] = &[
    ("Bert", "bert"),
    ("GPT2", "gpt2"),
    ("Llama", "llama"),
    ("OPT", "opt"),
];

/// What patches may look at besides their target: the model's `config.json`
/// (`model_type`, ...) and the versions their gates compare.
#[derive(Debug, Clone, Default)]
pub struct PatchContext {
    /// The model's config (after config patches); `Null` when there is none.
    pub config: Value,
    /// Versions for the gates.
    pub versions: Versions,
}

impl PatchContext {
    /// The context of a checkpoint with this `config.json`; its
    /// `transformers_version` feeds the `transformers` gates.
    pub fn from_config(config: &Value) -> Self {
        Self {
            versions: Versions::from_config(config),
            config: config.clone(),
        }
    }

    /// The config's `model_type`; for configs that predate the key (saved
    /// before transformers 3), guessed from `architectures` like
    /// `BertForMaskedLM`.
    pub fn model_type(&self) -> Option<&str> {
        if let Some(model_type) = self.config.get("model_type").and_then(Value::as_str) {
            return Some(model_type);
        }
        let architectures = self.config.get("architectures").and_then(Value::as_array)?;
        architectures
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| {
                ARCHITECTURE_PREFIXES
                    .iter()
                    .find(|(prefix, _)| a.starts_with(prefix))
                    .map(|(_, model_type)| *model_type)
            })
    }
}

/// A patch of targets of type `T`.
///
/// Implement [`Patch::info`], [`Patch::matches`] and [`Patch::rewrite`]; the
/// provided [`Patch::apply`] checks the gate, runs the rewrite through an
/// [`Editor`] and returns its edits, which [`Patch::undo`] reverts. A patch
/// must be idempotent: once applied, `matches` is false.
pub trait Patch<T: Target>: std::fmt::Debug + Send + Sync {
    /// Name, kind, target, gate.
    fn info(&self) -> &PatchInfo;

    /// Whether `target` holds what this patch rewrites (the content half of
    /// its gate: the names, keys or shapes it looks for).
    fn matches(&self, target: &T, ctx: &PatchContext) -> bool;

    /// Makes the edits, through `editor` so they are logged.
    fn rewrite(&self, editor: &mut Editor<'_, T>, ctx: &PatchContext) -> Result<(), PatchError>;

    /// The version gate admits `ctx` and the target matches.
    fn applies(&self, target: &T, ctx: &PatchContext) -> bool {
        self.info().gate.admits(&ctx.versions) && self.matches(target, ctx)
    }

    /// Applies the patch when it applies; returns the edits made (none when
    /// it did not apply). On error the target is left as it was.
    fn apply(&self, target: &mut T, ctx: &PatchContext) -> Result<Vec<Edit<T::Value>>, PatchError> {
        if !self.applies(target, ctx) {
            return Ok(Vec::new());
        }
        let name = self.info().name.clone();
        let mut editor = Editor::new(target, &name);
        let result = self.rewrite(&mut editor, ctx);
        let edits = editor.into_edits();
        match result {
            Ok(()) => Ok(edits),
            Err(e) => {
                self.undo(target, edits)?;
                Err(e)
            }
        }
    }

    /// Reverts `edits` made by [`Patch::apply`] on `target`.
    fn undo(&self, target: &mut T, edits: Vec<Edit<T::Value>>) -> Result<(), PatchError> {
        undo(target, edits).map_err(|source| PatchError::Undo {
            patch: self.info().name.clone(),
            source,
        })
    }
}
