//! Bad input gets a one-line error and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

fn embed_fails(home: &std::path::Path, model: &std::path::Path) -> String {
    one_line_failure(&run(cli(home)
        .args(["embed", "--json", "--model"])
        .arg(model)
        .arg("hello")))
}

#[test]
fn truncated_safetensors() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    let weights = model.join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap();
    file.set_len(len / 2).unwrap();
    let line = embed_fails(home.path(), &model);
    assert!(line.contains("model.safetensors"), "{line}");
}

#[test]
fn malformed_config() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    std::fs::write(model.join("config.json"), "{\"model_type\": \"bert\", ").unwrap();
    let line = embed_fails(home.path(), &model);
    assert!(
        line.contains("config.json") && line.contains("malformed"),
        "{line}"
    );
}

#[test]
fn config_with_wrong_types() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    std::fs::write(
        model.join("config.json"),
        r#"{"model_type": "bert", "hidden_size": "big"}"#,
    )
    .unwrap();
    let line = embed_fails(home.path(), &model);
    assert!(line.contains("config.json"), "{line}");
}

#[test]
fn missing_tokenizer() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    let line = embed_fails(home.path(), &model);
    assert!(line.contains("tokenizer.json"), "{line}");
}

#[test]
fn unsupported_architecture() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    std::fs::write(
        model.join("config.json"),
        r#"{"model_type": "mamba", "architectures": ["MambaForCausalLM"]}"#,
    )
    .unwrap();
    let line = embed_fails(home.path(), &model);
    assert!(
        line.contains("unsupported") && line.contains("bert"),
        "{line}"
    );
}

#[test]
fn empty_text_list() {
    let home = tempfile::tempdir().unwrap();
    let line = one_line_failure(&run(cli(home.path())
        .args(["embed", "--json", "--model"])
        .arg(fixture_model("bert"))));
    assert!(line.contains("no texts"), "{line}");
}

#[test]
fn unknown_model_names_every_place_tried() {
    let home = tempfile::tempdir().unwrap();
    let line = one_line_failure(&run(cli(home.path())
        .env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1")
        .args([
            "embed",
            "--json",
            "--model",
            "nosuch-org/nosuch-model",
            "hello",
        ])));
    assert!(line.contains("nosuch-org/nosuch-model"), "{line}");
    assert!(line.contains("config.json"), "{line}");
    assert!(line.contains("our cache"), "{line}");
    assert!(line.contains("Hub cache"), "{line}");
    assert!(line.contains("HF_HUB_OFFLINE"), "{line}");
}

#[test]
fn unknown_hub_model_with_unreachable_hub() {
    let home = tempfile::tempdir().unwrap();
    // A real network attempt to an endpoint that refuses connections.
    let line = one_line_failure(&run(cli(home.path())
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .args([
            "embed",
            "--json",
            "--model",
            "nosuch-org/nosuch-model",
            "hello",
        ])));
    assert!(line.contains("127.0.0.1:9"), "{line}");
}

#[test]
fn missing_folder_and_bad_backend() {
    let home = tempfile::tempdir().unwrap();
    let line = one_line_failure(&run(cli(home.path()).args([
        "embed",
        "--json",
        "--model",
        "./no/such/folder",
        "hello",
    ])));
    assert!(line.contains("no such model folder"), "{line}");
    let line = one_line_failure(&run(cli(home.path())
        .args(["embed", "--json", "--backend", "tpu", "--model"])
        .arg(fixture_model("bert"))
        .arg("hello")));
    assert!(line.contains("unknown backend"), "{line}");
    let line = one_line_failure(&run(cli(home.path())
        .args(["embed", "--json", "--backend", "ort", "--model"])
        .arg(fixture_model("bert"))
        .arg("hello")));
    assert!(line.contains("not available"), "{line}");
}

#[test]
fn too_long_input_is_truncated_not_fatal() {
    let home = tempfile::tempdir().unwrap();
    // The fixture's max_seq_length is 64; this is far longer.
    let long = "word ".repeat(5000);
    let answer = json_ok(&run(cli(home.path())
        .args(["embed", "--json", "--model"])
        .arg(fixture_model("bert"))
        .arg(&long)
        .arg("")));
    assert_eq!(embeddings(&answer).len(), 2);
}

#[test]
fn model_files_cannot_point_outside_the_model() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_copy("bert", home.path());
    let modules = r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "../../outside", "type": "sentence_transformers.models.Pooling"}]"#;
    std::fs::write(model.join("modules.json"), modules).unwrap();
    let line = embed_fails(home.path(), &model);
    assert!(
        line.contains("not a relative path inside the model"),
        "{line}"
    );
}

#[test]
fn import_needs_a_model_id() {
    let home = tempfile::tempdir().unwrap();
    let line = one_line_failure(&run(cli(home.path())
        .args(["cache", "import", "--json", "--as", "not a valid id"])
        .arg(fixture_model("bert"))));
    assert!(line.contains("not a valid Hub name"), "{line}");
    let line = one_line_failure(&run(cli(home.path())
        .args(["cache", "import", "--json", "--as", "org/name"])
        .arg(home.path().join("missing"))));
    assert!(line.contains("not a folder"), "{line}");
}
