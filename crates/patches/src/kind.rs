//! What a patch changes: the five kinds a `PatchSet` can select.

use serde::Serialize;

/// The kind of a patch (its `kind` in `patch list --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchKind {
    /// Makes a runtime accept input it would otherwise refuse (e.g. a config
    /// key renamed between transformers versions).
    RuntimeFix,
    /// Renames, adds or drops tensors of a checkpoint or nodes of a graph.
    ModelRewrite,
    /// Flattens a structured value (a KV cache) into named tensors and back.
    CacheSerialization,
    /// Replaces data-dependent control flow (an ONNX `If` on a constant).
    ControlFlowRewrite,
    /// An idempotent text patch of a file on disk.
    FilePatch,
}

impl PatchKind {
    /// Every kind, in a stable order.
    pub const ALL: [PatchKind; 5] = [
        Self::RuntimeFix,
        Self::ModelRewrite,
        Self::CacheSerialization,
        Self::ControlFlowRewrite,
        Self::FilePatch,
    ];

    /// The name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::RuntimeFix => "runtime_fix",
            Self::ModelRewrite => "model_rewrite",
            Self::CacheSerialization => "cache_serialization",
            Self::ControlFlowRewrite => "control_flow_rewrite",
            Self::FilePatch => "file_patch",
        }
    }
}

impl std::fmt::Display for PatchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PatchKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown patch kind '{s}' (one of {})", names.join(", "))
            })
    }
}
