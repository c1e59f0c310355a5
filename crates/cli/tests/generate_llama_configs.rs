//! A LLaMA config the model cannot honour is a one-line error (the variants
//! that must match transformers are checked in `generate.rs`).

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// The one error line of generating two tokens from "Hello".
fn generate_fails(home: &Path, model: &Path) -> String {
    let extra = [
        "--max-new-tokens",
        "2",
        "--greedy",
        "--return-logits",
        "Hello",
    ];
    failure_of(cli(home), "generate", model, &extra)
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
        // A copy of the shared fixture with the value in its config.json.
        let dir = fixture_copy("llama", &home.path().join(i.to_string()));
        edit_json(&dir.join("config.json"), |c| c[key] = value);
        let line = generate_fails(home.path(), &dir);
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
    let line = generate_fails(home.path(), &dir);
    assert!(line.contains("lm_head.weight"), "{line}");
}
