//! A LLaMA config the model cannot honour is a one-line error (the variants
//! that must match transformers are checked in `generate.rs`).

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn generate(home: &Path, model: &Path, prompt: &str, new_tokens: usize) -> std::process::Output {
    run(cli(home)
        .args(["generate", "--model"])
        .arg(model)
        .args(["--max-new-tokens", &new_tokens.to_string()])
        .args(["--greedy", "--json", "--return-logits", prompt]))
}

/// A copy of the shared fixture with `edit` applied to its config.json.
fn edited_llama(into: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = fixture_copy("llama", into);
    let mut config = read_json(&dir.join("config.json"));
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn unusable_llama_configs_are_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    // (what the error names, config key, value)
    let cases = [
        (
            "rope_scaling",
            "rope_scaling",
            serde_json::json!({"rope_type": "su", "factor": 2.0}),
        ),
        (
            "factor",
            "rope_scaling",
            serde_json::json!({"rope_type": "linear"}),
        ),
        (
            "long_factor",
            "rope_scaling",
            serde_json::json!({
                "rope_type": "longrope", "factor": 2.0,
                "short_factor": [1.0, 1.0, 1.0, 1.0], "long_factor": [1.0]
            }),
        ),
        (
            "num_key_value_heads",
            "num_key_value_heads",
            serde_json::json!(3),
        ),
    ];
    for (i, (needle, key, value)) in cases.into_iter().enumerate() {
        let dir = edited_llama(&home.path().join(i.to_string()), |c| c[key] = value);
        let line = one_line_failure(&generate(home.path(), &dir, "Hello", 2));
        assert!(line.contains(needle), "{needle}: {line}");
    }
    // An untied head whose weight is missing is named, not silently random.
    let dir = fixture_copy("llama", &home.path().join("no_head"));
    // Renamed in the header (same length, so the file stays valid).
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let (from, to) = (b"\"lm_head.weight\"", b"\"lm_head.weighx\"");
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    let mut renamed = bytes.clone();
    renamed[at..at + to.len()].copy_from_slice(to);
    std::fs::write(&weights, renamed).unwrap();
    let line = one_line_failure(&generate(home.path(), &dir, "Hello", 2));
    assert!(line.contains("lm_head.weight"), "{line}");
}
