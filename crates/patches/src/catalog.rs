//! Every built-in patch, and which of them apply to a given model: what
//! `patch list` shows.

use crate::checkpoint::Tensors;
use crate::kv_cache::global;
use crate::{checkpoint, config, file, PatchContext, PatchInfo, PatchKind};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One `patch list` row.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    #[serde(flatten)]
    pub info: PatchInfo,
    /// See [`catalog`].
    pub applies: bool,
}

/// What a model offers patches: its config and its tensors' names and shapes.
#[derive(Debug, Clone)]
pub struct ModelView {
    pub config: Value,
    pub tensors: Tensors<Vec<usize>>,
}

/// Every built-in patch (config, checkpoint, KV-cache layouts registered
/// now, the js-ipfs file patch with its target under `ipfs_node_dir`).
///
/// `applies`:
/// - with a `model`: config and checkpoint patches whose version gate admits
///   the model's `transformers_version` and whose content check matches
///   its config / tensors (config patches first, as when loading);
/// - without one: config and checkpoint patches are on (`enabled`, i.e. not
///   turned off by `TRANSFORMERS_PATCH_DISABLE` or an option), and would be
///   tried on every model loaded;
/// - KV-cache layouts: registered (usable now);
/// - ONNX graph rewrites: without a model, on; with one, false: they act
///   on graphs handed to them (export, a runtime's graph), never on a
///   model's files;
/// - file patches: their target exists, is the version they were written
///   for, and holds the original text (applying would change it).
///
/// `graph_rewrites` are the ONNX graph rewrites' descriptions, which live
/// with the exporter (`ipfs-accelerate-export`'s `rewrites::infos()`), above
/// this crate.
pub fn catalog(
    model: Option<&ModelView>,
    enabled: bool,
    ipfs_node_dir: &Path,
    graph_rewrites: Vec<PatchInfo>,
) -> Vec<CatalogEntry> {
    let mut rows = Vec::new();
    let mut config_value = model.map(|m| m.config.clone()).unwrap_or(Value::Null);
    let ctx = PatchContext::from_config(&config_value);
    for patch in config::builtin() {
        let applies = match model {
            Some(_) => enabled && patch.applies(&config_value, &ctx),
            None => enabled,
        };
        if applies && model.is_some() {
            // Later patches see the config as loading would give it to them.
            let _ = patch.apply(&mut config_value, &ctx);
        }
        rows.push(CatalogEntry {
            info: patch.info().clone(),
            applies,
        });
    }
    let ctx = PatchContext::from_config(&config_value);
    let mut tensors = model.map(|m| m.tensors.clone()).unwrap_or_default();
    for patch in checkpoint::builtin::<Vec<usize>>() {
        let applies = match model {
            Some(_) => enabled && patch.applies(&tensors, &ctx),
            None => enabled,
        };
        if applies && model.is_some() {
            let _ = patch.apply(&mut tensors, &ctx);
        }
        rows.push(CatalogEntry {
            info: patch.info().clone(),
            applies,
        });
    }
    let registry = match global().read() {
        Ok(r) => r.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    rows.extend(registry.infos().into_iter().map(|info| CatalogEntry {
        info,
        applies: true,
    }));
    rows.extend(graph_rewrites.into_iter().map(|info| CatalogEntry {
        info,
        applies: enabled && model.is_none(),
    }));
    let js = file::js_ipfs_add_size(ipfs_node_dir);
    rows.push(CatalogEntry {
        info: js.info(),
        applies: matches!(js.check(), Ok(file::FileState::Original)),
    });
    debug_assert!(rows.iter().all(|r| PatchKind::ALL.contains(&r.info.kind)));
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_gates_are_what_they_say() {
        let rows = catalog(None, true, Path::new("/nonexistent"), Vec::new());
        let gate = |name: &str| {
            rows.iter()
                .find(|r| r.info.name == name)
                .map(|r| r.info.gate.to_string())
                .unwrap()
        };
        assert_eq!(gate("config.torch_dtype_to_dtype"), "transformers < 4.56");
        assert_eq!(
            gate("checkpoint.rotary_emb_inv_freq"),
            "transformers < 4.31"
        );
        assert_eq!(gate("file.js-ipfs_add_Size_as_string"), "package == 0.15.1");
        let mut names: Vec<&str> = rows.iter().map(|r| r.info.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), rows.len(), "names are unique");
        // Without a model every config/checkpoint patch is on; the file
        // patch's target is not there.
        assert!(rows
            .iter()
            .filter(|r| r.info.kind != PatchKind::FilePatch)
            .all(|r| r.applies));
        assert!(!rows
            .iter()
            .any(|r| r.info.kind == PatchKind::FilePatch && r.applies));
        assert!(catalog(None, false, Path::new("/x"), Vec::new())
            .iter()
            .any(|r| !r.applies));
    }

    #[test]
    fn evaluates_against_a_model() {
        let model = ModelView {
            config: serde_json::json!({"model_type": "bert", "transformers_version": "4.6.0"}),
            tensors: [("embeddings.LayerNorm.gamma".to_owned(), vec![4])].into(),
        };
        let rows = catalog(Some(&model), true, Path::new("/x"), Vec::new());
        let applying: Vec<&str> = rows
            .iter()
            .filter(|r| r.applies && r.info.kind != PatchKind::CacheSerialization)
            .map(|r| r.info.name.as_str())
            .collect();
        assert_eq!(applying, ["checkpoint.layer_norm_gamma_beta"]);
    }
}
