//! PatchSet: apply, idempotence, exact undo on drop, kinds, custom patches,
//! dumps.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate_patches::{
    checkpoint, config, Editor, Patch, PatchContext, PatchError, PatchInfo, PatchKind, PatchSet,
    Target, VersionGate,
};
use serde_json::{json, Value};
use std::collections::HashMap;

fn old_llama_config() -> Value {
    json!({
        "model_type": "llama",
        "transformers_version": "4.30.2",
        "torch_dtype": "float16",
        "rope_scaling": {"type": "linear", "factor": 2.0}
    })
}

fn config_set() -> PatchSet<Value> {
    PatchSet::builder().patches(config::builtin()).build()
}

#[test]
fn config_patches_apply_once_and_undo_exactly() {
    let original = old_llama_config();
    let mut cfg = original.clone();
    let ctx = PatchContext::from_config(&cfg);
    let set = config_set();
    {
        let applied = set.apply(&mut cfg, &ctx).unwrap();
        assert_eq!(
            applied.names(),
            [
                "config.torch_dtype_to_dtype",
                "config.rope_scaling_type_to_rope_type"
            ]
        );
        let t = applied.target();
        assert_eq!(t["dtype"], "float16");
        assert!(t.get("torch_dtype").is_none());
        assert_eq!(t["rope_scaling"]["rope_type"], "linear");
        assert_eq!(t["rope_scaling"]["type"], "linear");
    }
    // Dropped: undone, byte for byte.
    assert_eq!(cfg, original);
    assert_eq!(cfg.render(), original.render());

    // Kept, then applied again: the second time changes nothing.
    let kept = set.apply(&mut cfg, &ctx).unwrap().keep();
    assert_eq!(kept.len(), 2);
    let once = cfg.clone();
    let again = set.apply(&mut cfg, &ctx).unwrap();
    assert!(again.names().is_empty());
    drop(again);
    assert_eq!(cfg, once);
}

#[test]
fn version_gates_hold_back_patches_for_newer_checkpoints() {
    let mut cfg =
        json!({"model_type": "llama", "transformers_version": "4.57.6", "torch_dtype": "float32"});
    let ctx = PatchContext::from_config(&cfg);
    let set = config_set();
    assert!(set.apply(&mut cfg, &ctx).unwrap().names().is_empty());
    // No recorded version: the content decides.
    let mut cfg = json!({"model_type": "llama", "torch_dtype": "float32"});
    let ctx = PatchContext::from_config(&cfg);
    assert_eq!(
        set.apply(&mut cfg, &ctx).unwrap().keep(),
        ["config.torch_dtype_to_dtype"]
    );
}

#[test]
fn gpt2_generic_names_become_gpt2_names() {
    let mut cfg =
        json!({"model_type": "gpt2", "hidden_size": 32, "num_hidden_layers": 2, "n_head": 4});
    let ctx = PatchContext::from_config(&cfg);
    let set = config_set();
    set.apply(&mut cfg, &ctx).unwrap().keep();
    assert_eq!(
        cfg,
        json!({"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 4})
    );
    // Other model types keep their generic names.
    let mut bert = json!({"model_type": "bert", "hidden_size": 32});
    let bert_ctx = PatchContext::from_config(&bert);
    assert!(set.apply(&mut bert, &bert_ctx).unwrap().names().is_empty());
}

#[test]
fn kinds_and_disable_select_patches() {
    let mut cfg = old_llama_config();
    let ctx = PatchContext::from_config(&cfg);
    let only_rewrites = PatchSet::builder()
        .patches(config::builtin())
        .kinds(&[PatchKind::ModelRewrite])
        .build();
    assert!(only_rewrites.patches().is_empty());
    assert!(only_rewrites
        .apply(&mut cfg, &ctx)
        .unwrap()
        .names()
        .is_empty());
    let off = PatchSet::builder()
        .patches(config::builtin())
        .enabled(false)
        .build();
    assert!(off.apply(&mut cfg, &ctx).unwrap().names().is_empty());
    assert_eq!(cfg, old_llama_config());
}

/// A caller's own patch: sets `use_cache` to false for OPT configs.
#[derive(Debug)]
struct NoCache(PatchInfo);

impl Patch<Value> for NoCache {
    fn info(&self) -> &PatchInfo {
        &self.0
    }
    fn matches(&self, cfg: &Value, ctx: &PatchContext) -> bool {
        ctx.model_type() == Some("opt") && cfg.get("use_cache") != Some(&json!(false))
    }
    fn rewrite(&self, editor: &mut Editor<'_, Value>, _: &PatchContext) -> Result<(), PatchError> {
        editor.set("/use_cache", json!(false))
    }
}

/// A patch that edits, then fails.
#[derive(Debug)]
struct Fails(PatchInfo);

impl Patch<Value> for Fails {
    fn info(&self) -> &PatchInfo {
        &self.0
    }
    fn matches(&self, _: &Value, _: &PatchContext) -> bool {
        true
    }
    fn rewrite(&self, editor: &mut Editor<'_, Value>, _: &PatchContext) -> Result<(), PatchError> {
        editor.set("/half_done", json!(1))?;
        editor.rename("/missing", "/other")
    }
}

fn info(name: &str) -> PatchInfo {
    PatchInfo {
        name: name.to_owned(),
        kind: PatchKind::RuntimeFix,
        target: "config.json".to_owned(),
        gate: VersionGate::parse("transformers >= 4.0").unwrap(),
        description: String::new(),
        source: String::new(),
    }
}

#[test]
fn custom_patches_apply_after_builtin_ones() {
    let mut cfg = json!({"model_type": "opt", "transformers_version": "4.57.6", "use_cache": true});
    let ctx = PatchContext::from_config(&cfg);
    let set = PatchSet::builder()
        .patches(config::builtin())
        .custom_patches(vec![Box::new(NoCache(info("custom.opt_no_cache")))])
        .build();
    {
        let applied = set.apply(&mut cfg, &ctx).unwrap();
        assert_eq!(applied.names(), ["custom.opt_no_cache"]);
        assert_eq!(applied.target()["use_cache"], false);
    }
    assert_eq!(cfg["use_cache"], true);
}

#[test]
fn a_failing_patch_leaves_the_target_as_it_was() {
    let original = old_llama_config();
    let mut cfg = original.clone();
    let ctx = PatchContext::from_config(&cfg);
    let set = PatchSet::builder()
        .patches(config::builtin())
        .custom_patches(vec![Box::new(Fails(info("custom.fails")))])
        .build();
    let err = set.apply(&mut cfg, &ctx).unwrap_err();
    assert!(err.to_string().contains("custom.fails"), "{err}");
    assert_eq!(cfg, original);
}

#[test]
fn dumps_original_rewritten_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = old_llama_config();
    let ctx = PatchContext::from_config(&cfg);
    let set = PatchSet::builder()
        .patches(config::builtin())
        .dump_dir(Some(dir.path().to_owned()))
        .build();
    set.apply(&mut cfg, &ctx).unwrap().keep();
    let mut tensors: HashMap<String, Vec<usize>> = HashMap::from([
        (
            "model.layers.0.self_attn.rotary_emb.inv_freq".to_owned(),
            vec![4],
        ),
        ("model.embed_tokens.weight".to_owned(), vec![10, 8]),
    ]);
    let tensor_set = PatchSet::builder()
        .patches(checkpoint::builtin())
        .dump_dir(Some(dir.path().to_owned()))
        .build();
    tensor_set
        .apply(&mut tensors, &PatchContext::from_config(&cfg))
        .unwrap()
        .keep();

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "000-config.torch_dtype_to_dtype.diff",
            "000-config.torch_dtype_to_dtype.original.json",
            "000-config.torch_dtype_to_dtype.rewritten.json",
            "001-config.rope_scaling_type_to_rope_type.diff",
            "001-config.rope_scaling_type_to_rope_type.original.json",
            "001-config.rope_scaling_type_to_rope_type.rewritten.json",
            "002-checkpoint.rotary_emb_inv_freq.diff",
            "002-checkpoint.rotary_emb_inv_freq.original.txt",
            "002-checkpoint.rotary_emb_inv_freq.rewritten.txt",
        ]
    );
    let diff =
        std::fs::read_to_string(dir.path().join("000-config.torch_dtype_to_dtype.diff")).unwrap();
    assert!(diff.contains("--- config.json (original)"), "{diff}");
    assert!(diff.contains("-  \"torch_dtype\": \"float16\""), "{diff}");
    assert!(diff.contains("+  \"dtype\": \"float16\""), "{diff}");
    let original: Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join("000-config.torch_dtype_to_dtype.original.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(original, old_llama_config());
    let diff = std::fs::read_to_string(dir.path().join("002-checkpoint.rotary_emb_inv_freq.diff"))
        .unwrap();
    assert!(
        diff.contains("-model.layers.0.self_attn.rotary_emb.inv_freq [4]"),
        "{diff}"
    );
}
