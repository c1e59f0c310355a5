//! Bad input gets a one-line error and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// `embed --json --model MODEL EXTRA...`, expecting a clean failure.
fn embed_fails(cmd: std::process::Command, model: impl AsRef<Path>, extra: &[&str]) -> String {
    failure_of(cmd, "embed", model.as_ref(), extra)
}

/// The error of embedding "hello" with a copy of the bert fixture that
/// `edit` broke.
fn broken_bert(edit: impl FnOnce(&Path)) -> String {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    edit(&model);
    embed_fails(cli(home.path()), &model, &["hello"])
}

/// Replaces a file of the model folder.
fn write(model: &Path, file: &str, text: &str) {
    std::fs::write(model.join(file), text).unwrap();
}

#[test]
fn truncated_safetensors() {
    let line = broken_bert(|model| {
        let weights = model.join("model.safetensors");
        write_prefix(&weights, &weights, |n| n / 2);
    });
    assert!(line.contains("model.safetensors"), "{line}");
}

#[test]
fn malformed_config() {
    let line = broken_bert(|model| write(model, "config.json", "{\"model_type\": \"bert\", "));
    assert!(
        line.contains("config.json") && line.contains("malformed"),
        "{line}"
    );
}

#[test]
fn config_with_wrong_types() {
    let config = r#"{"model_type": "bert", "hidden_size": "big"}"#;
    let line = broken_bert(|model| write(model, "config.json", config));
    assert!(line.contains("config.json"), "{line}");
}

#[test]
fn missing_tokenizer() {
    let line = broken_bert(|model| std::fs::remove_file(model.join("tokenizer.json")).unwrap());
    assert!(line.contains("tokenizer.json"), "{line}");
}

#[test]
fn unsupported_architecture() {
    let config = r#"{"model_type": "mamba", "architectures": ["MambaForCausalLM"]}"#;
    let line = broken_bert(|model| write(model, "config.json", config));
    assert!(
        line.contains("unsupported") && line.contains("bert"),
        "{line}"
    );
}

#[test]
fn empty_text_list() {
    let home = tempfile::tempdir().unwrap();
    let line = embed_fails(cli(home.path()), fixture_model("bert"), &[]);
    assert!(line.contains("no texts"), "{line}");
}

#[test]
fn unknown_model_names_every_place_tried() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = cli(home.path());
    cmd.env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1");
    let line = embed_fails(cmd, "nosuch-org/nosuch-model", &["hello"]);
    for place in [
        "nosuch-org/nosuch-model",
        "config.json",
        "our cache",
        "Hub cache",
        "HF_HUB_OFFLINE",
    ] {
        assert!(line.contains(place), "{line}");
    }
}

#[test]
fn unknown_hub_model_with_unreachable_hub() {
    let home = tempfile::tempdir().unwrap();
    // A real network attempt to an endpoint that refuses connections.
    let mut cmd = cli(home.path());
    cmd.env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", "http://127.0.0.1:9");
    let line = embed_fails(cmd, "nosuch-org/nosuch-model", &["hello"]);
    assert!(line.contains("127.0.0.1:9"), "{line}");
}

#[test]
fn missing_folder_and_bad_backend() {
    let home = tempfile::tempdir().unwrap();
    let line = embed_fails(cli(home.path()), "./no/such/folder", &["hello"]);
    assert!(line.contains("no such model folder"), "{line}");
    for (backend, needle) in [("tpu", "unknown backend"), ("ort", "not available")] {
        let extra = ["--backend", backend, "hello"];
        let line = embed_fails(cli(home.path()), fixture_model("bert"), &extra);
        assert!(line.contains(needle), "{line}");
    }
}

#[test]
fn too_long_input_is_truncated_not_fatal() {
    let home = tempfile::tempdir().unwrap();
    // The fixture's max_seq_length is 64; this is far longer.
    let long = "word ".repeat(5000);
    let answer = embed(cli(home.path()), fixture_model("bert"), &[&long, ""], &[]);
    assert_eq!(embeddings(&answer).len(), 2);
}

#[test]
fn model_files_cannot_point_outside_the_model() {
    let modules = r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "../../outside", "type": "sentence_transformers.models.Pooling"}]"#;
    let line = broken_bert(|model| write(model, "modules.json", modules));
    assert!(
        line.contains("not a relative path inside the model"),
        "{line}"
    );
}

#[test]
fn import_needs_a_model_id() {
    let home = tempfile::tempdir().unwrap();
    let import = |id: &str, dir: &Path| {
        failure(
            cli(home.path())
                .args(["cache", "import", "--json", "--as", id])
                .arg(dir),
        )
    };
    let line = import("not a valid id", &fixture_model("bert"));
    assert!(line.contains("not a valid Hub name"), "{line}");
    let line = import("org/name", &home.path().join("missing"));
    assert!(line.contains("not a folder"), "{line}");
}
