//! `export onnx` through the binary: the JSON contract and errors.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

#[test]
fn export_onnx_answers_path_inputs_outputs_opset() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("exported");
    let answer = json_of(
        cli(home.path())
            .args(["export", "onnx", "--json", "--model"])
            .arg(fixture_model("llama"))
            .arg("--out")
            .arg(&out_dir),
    );
    assert_eq!(answer["opset"], 17);
    let path = std::path::PathBuf::from(answer["path"].as_str().unwrap());
    assert_eq!(path, out_dir.join("model.onnx"));
    assert!(path.is_file());
    let inputs = pluck(&answer["inputs"], "name");
    assert_eq!(
        inputs,
        [
            "input_ids",
            "attention_mask",
            "position_ids",
            "past_key_values.0.key",
            "past_key_values.0.value",
            "past_key_values.1.key",
            "past_key_values.1.value"
        ]
    );
    assert_eq!(
        answer["inputs"][3]["shape"],
        serde_json::json!(["batch_size", 2, "past_sequence_length", 8])
    );
    assert_eq!(answer["outputs"][0]["name"], "logits");
    assert_eq!(answer["outputs"][4]["name"], "present.1.value");
}

#[test]
fn export_onnx_refuses_an_unsupported_model_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    // Every family of the table has an exporter; a Mamba config has none.
    let model = home.path().join("mamba");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let out = run(cli(home.path())
        .args(["export", "onnx", "--json", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(home.path().join("x")));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model_type 'mamba' has no exporter"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
