//! Export-patch rewriting (docs/patches.md): scoped, version-gated patches
//! of checkpoints, configs, ONNX graphs and files, applied through guards
//! that undo them, with rewrites dumped as diffs. The ONNX exporter and the
//! graph rewrites live in `ipfs-accelerate-export`.
//!
//! ```
//! use ipfs_accelerate_patches::{checkpoint, PatchContext, PatchSet};
//! use std::collections::HashMap;
//!
//! // A TF-era BERT checkpoint (names and shapes are enough here).
//! let mut tensors: HashMap<String, Vec<usize>> = HashMap::from([
//!     ("embeddings.LayerNorm.gamma".to_owned(), vec![32]),
//!     ("embeddings.LayerNorm.beta".to_owned(), vec![32]),
//! ]);
//! let ctx = PatchContext::from_config(&serde_json::json!({"model_type": "bert"}));
//! let set = PatchSet::builder().patches(checkpoint::builtin()).build();
//! let applied = set.apply(&mut tensors, &ctx)?;
//! assert!(applied.target().contains_key("embeddings.LayerNorm.weight"));
//! drop(applied); // undone: the original names are back
//! assert!(tensors.contains_key("embeddings.LayerNorm.gamma"));
//! # Ok::<(), ipfs_accelerate_patches::PatchError>(())
//! ```

mod catalog;
pub mod checkpoint;
pub mod config;
mod dump;
mod edit;
mod error;
pub mod file;
mod gate;
mod kind;
pub mod kv_cache;
mod patch;
mod set;
mod target;
mod version;

pub use catalog::{catalog, CatalogEntry, ModelView};
pub use dump::{DumpFiles, RewriteDump};
pub use edit::{undo, Edit, Editor, UndoError};
pub use error::PatchError;
pub use gate::{GateOutcome, Op, VersionGate, Versions, ONNX_OPSET, ONNX_RUNTIME, TRANSFORMERS};
pub use kind::PatchKind;
pub use patch::{Patch, PatchContext, PatchInfo};
pub use set::{AppliedPatches, PatchSet, PatchSetBuilder};
pub use target::{pointer, KeyError, Target, TensorLike};
pub use version::Version;
