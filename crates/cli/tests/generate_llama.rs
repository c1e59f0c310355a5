//! `generate` reproduces transformers' greedy generation for the shared
//! LLaMA fixture (GQA, untied head, plain RoPE).

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

/// This checkout's llama fixture (the support crate's `fixture_model` may
/// point at another checkout when the target directory is shared).
fn llama_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/llama")
}

fn reference_json() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(llama_dir().join("reference.json")).unwrap()).unwrap()
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(value.clone()).unwrap()
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(value.clone()).unwrap()
}

#[test]
fn llama_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let reference = reference_json();
    let expected = &reference["prompt"];
    let new_tokens = reference["generation"]["max_new_tokens"].as_u64().unwrap();
    let out = run(cli(home.path())
        .args(["generate", "--model"])
        .arg(llama_dir())
        .args(["--max-new-tokens", &new_tokens.to_string()])
        .args(["--greedy", "--json", "--return-logits"])
        .arg(reference["inputs"]["prompt"].as_str().unwrap()));
    let answer = json_ok(&out);
    let got = floats(&answer["last_logits"]);
    let want = floats(&expected["last_logits"]["data"]);
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-4, "last_logits max abs diff {diff}");
    assert_eq!(ids(&answer["token_ids"]), ids(&expected["token_ids"]));
    assert_eq!(answer["text"], expected["text"]);
    assert_eq!(
        answer["prompt_tokens"].as_u64().unwrap() as usize,
        expected["input_ids"]["data"].as_array().unwrap().len()
    );
    assert_eq!(answer["backend"], "cpu");
}
