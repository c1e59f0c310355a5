//! `generate` reproduces transformers for every LLaMA config variant in
//! `fixtures/models/variants/llama_*` (made by
//! `fixtures/variants-src/make_llama_variants.py`): each rope_scaling type
//! (linear with the legacy `type` key, dynamic NTK past the context, yarn,
//! longrope crossing the original context, llama3), tied embeddings,
//! attention/MLP biases, head_dim, a vocabulary padded past the tokenizer.
//! A config LLaMA cannot honour is a one-line error.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// This crate's own `fixtures/models/variants` (not the support crate's
/// `fixtures_dir()`, which a target directory shared between checkouts may
/// have compiled for another one).
fn variants_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/variants")
}

fn llama_variant_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(variants_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("llama_"))
        })
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no llama_* variant fixtures");
    dirs
}

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

#[test]
fn llama_config_variants_match_transformers() {
    let home = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for dir in llama_variant_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let reference = read_json(&dir.join("reference.json"));
        let want_ids: Vec<u32> = serde_json::from_value(reference["token_ids"].clone()).unwrap();
        let want_logits: Vec<f32> =
            serde_json::from_value(reference["last_logits"].clone()).unwrap();
        let answer = json_ok(&generate(
            home.path(),
            &dir,
            reference["prompt"].as_str().unwrap(),
            want_ids.len(),
        ));
        let got_ids: Vec<u32> = serde_json::from_value(answer["token_ids"].clone()).unwrap();
        let got_logits: Vec<f32> = serde_json::from_value(answer["last_logits"].clone()).unwrap();
        assert_eq!(got_logits.len(), want_logits.len(), "{name}: vocabulary");
        let diff = got_logits
            .iter()
            .zip(&want_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{name}: last_logits max abs diff {diff:.2e}, ids equal {}",
            got_ids == want_ids
        );
        if diff > 1e-4 {
            failures.push(format!("{name}: last_logits max abs diff {diff}"));
        }
        if got_ids != want_ids {
            failures.push(format!("{name}: token_ids {got_ids:?} != {want_ids:?}"));
        }
        if answer["text"] != reference["text"] {
            failures.push(format!(
                "{name}: text {} != {}",
                answer["text"], reference["text"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
