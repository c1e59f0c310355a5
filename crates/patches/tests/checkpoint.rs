//! Checkpoint rewrites on tensor maps (names and shapes): what each one
//! matches, its gate, and exact undo.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate_patches::{checkpoint, PatchContext, PatchSet};
use serde_json::json;
use std::collections::HashMap;

type Shapes = HashMap<String, Vec<usize>>;

fn shapes(names: &[(&str, &[usize])]) -> Shapes {
    names
        .iter()
        .map(|(n, s)| ((*n).to_owned(), s.to_vec()))
        .collect()
}

fn apply(tensors: &mut Shapes, config: serde_json::Value) -> Vec<String> {
    let set = PatchSet::builder().patches(checkpoint::builtin()).build();
    let ctx = PatchContext::from_config(&config);
    set.apply(tensors, &ctx).unwrap().keep()
}

fn sorted(t: &Shapes) -> Vec<&str> {
    let mut v: Vec<&str> = t.keys().map(String::as_str).collect();
    v.sort();
    v
}

#[test]
fn gamma_beta_become_weight_bias_and_undo_restores() {
    let original = shapes(&[
        ("bert.embeddings.LayerNorm.gamma", &[32]),
        ("bert.embeddings.LayerNorm.beta", &[32]),
        ("bert.embeddings.word_embeddings.weight", &[600, 32]),
        ("cls.predictions.bias", &[600]),
    ]);
    let mut t = original.clone();
    let ctx = PatchContext::from_config(&json!({"model_type": "bert"}));
    let set = PatchSet::builder().patches(checkpoint::builtin()).build();
    {
        let applied = set.apply(&mut t, &ctx).unwrap();
        assert_eq!(
            applied.names(),
            [
                "checkpoint.layer_norm_gamma_beta",
                "checkpoint.bert.strip_bert_prefix"
            ]
        );
        assert_eq!(
            sorted(applied.target()),
            [
                "cls.predictions.bias",
                "embeddings.LayerNorm.bias",
                "embeddings.LayerNorm.weight",
                "embeddings.word_embeddings.weight"
            ]
        );
    }
    assert_eq!(t, original);
}

#[test]
fn llama_base_checkpoints_get_the_model_prefix() {
    let mut t = shapes(&[
        ("embed_tokens.weight", &[10, 8]),
        ("layers.0.mlp.up_proj.weight", &[16, 8]),
        ("norm.weight", &[8]),
        ("lm_head.weight", &[10, 8]),
    ]);
    let applied = apply(
        &mut t,
        json!({"model_type": "llama", "transformers_version": "4.57.6"}),
    );
    assert_eq!(applied, ["checkpoint.llama.add_model_prefix"]);
    assert_eq!(
        sorted(&t),
        [
            "lm_head.weight",
            "model.embed_tokens.weight",
            "model.layers.0.mlp.up_proj.weight",
            "model.norm.weight"
        ]
    );
    // Already in the expected layout (and of another model type): nothing.
    assert!(apply(&mut t, json!({"model_type": "llama"})).is_empty());
    let mut gpt2 = shapes(&[("embed_tokens.weight", &[10, 8])]);
    assert!(apply(&mut gpt2, json!({"model_type": "gpt2"})).is_empty());
}

#[test]
fn inv_freq_is_dropped_only_for_old_checkpoints() {
    let old = shapes(&[
        ("model.layers.0.self_attn.rotary_emb.inv_freq", &[4]),
        ("model.layers.1.self_attn.rotary_emb.inv_freq", &[4]),
        ("model.embed_tokens.weight", &[10, 8]),
    ]);
    let mut t = old.clone();
    let applied = apply(
        &mut t,
        json!({"model_type": "llama", "transformers_version": "4.30.0.dev0"}),
    );
    assert_eq!(applied, ["checkpoint.rotary_emb_inv_freq"]);
    assert_eq!(sorted(&t), ["model.embed_tokens.weight"]);

    let mut t = old.clone();
    assert!(apply(
        &mut t,
        json!({"model_type": "llama", "transformers_version": "4.31.0"})
    )
    .is_empty());
    assert_eq!(t, old);

    // Unknown version: the buffers themselves decide.
    let mut t = old.clone();
    assert_eq!(apply(&mut t, json!({"model_type": "llama"})).len(), 1);

    // Not a vector: not the buffer, left alone.
    let mut t = shapes(&[("x.rotary_emb.inv_freq", &[2, 2])]);
    assert!(apply(&mut t, json!({"transformers_version": "4.28.0"})).is_empty());
}

#[test]
fn never_overwrites_an_existing_tensor() {
    let mut t = shapes(&[("a.LayerNorm.gamma", &[4]), ("a.LayerNorm.weight", &[4])]);
    assert!(apply(&mut t, json!({})).is_empty());
    assert_eq!(t.len(), 2);
}

#[test]
fn reads_shapes_from_a_safetensors_header() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(dir).join("../../fixtures/models/bert/model.safetensors");
    let t = checkpoint::read_shapes(&path).unwrap();
    assert_eq!(t["embeddings.word_embeddings.weight"], vec![600, 32]);
    assert_eq!(t["embeddings.LayerNorm.weight"], vec![32]);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), b"not a safetensors file").unwrap();
    assert!(checkpoint::read_shapes(tmp.path()).is_err());
}
