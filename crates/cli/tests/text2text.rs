//! `text2text` reproduces transformers' greedy generation for T5 (the shared
//! fixture and our config-variant fixtures: relu vs gated-gelu feed-forward,
//! tied vs untied head, a config that omits `tie_word_embeddings`), and
//! refuses bad input with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn text2text(home: &Path, model: &Path, text: &str, new_tokens: usize) -> serde_json::Value {
    let out = run(cli(home)
        .args(["text2text", "--greedy", "--json", "--return-logits"])
        .args(["--max-new-tokens", &new_tokens.to_string(), "--model"])
        .arg(model)
        .arg(text));
    json_ok(&out)
}

/// Runs every text of a reference alone and checks the first decoder step's
/// logits, the greedy ids and their text.
fn check_reference(home: &Path, model: &Path, reference: &serde_json::Value) {
    let texts = reference["inputs"]["texts"].as_array().unwrap();
    let logits = &reference["outputs"]["first_step_logits"];
    // The shared fixture stores `{shape, data}`, the variants a list per text.
    let rows: Vec<Vec<f32>> = if logits.get("data").is_some() {
        reference_rows(logits)
    } else {
        serde_json::from_value(logits.clone()).unwrap()
    };
    let generation = &reference["generation"];
    let new_tokens = generation["max_new_tokens"].as_u64().unwrap() as usize;
    let eos = generation["eos_token_id"].as_u64().unwrap() as u32;
    for (i, text) in texts.iter().enumerate() {
        let name = format!("{} text {i}", model.display());
        let answer = text2text(home, model, text.as_str().unwrap(), new_tokens);
        let diff = max_abs_diff(&f32_list(&answer["last_logits"]), &rows[i]);
        assert!(
            diff <= 1e-4,
            "{name}: first-step logits max abs diff {diff}"
        );
        // Batched references pad rows that ended early; we stop at EOS.
        let mut want = id_list(&generation["token_ids"][i]);
        if let Some(end) = want.iter().position(|&t| t == eos) {
            want.truncate(end + 1);
        }
        assert_eq!(id_list(&answer["token_ids"]), want, "{name}: token_ids");
        assert_eq!(answer["text"], generation["texts"][i], "{name}: text");
        assert_eq!(answer["backend"], "cpu", "{name}");
        assert_eq!(answer["model"], model.to_str().unwrap(), "{name}");
    }
}

#[test]
fn t5_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    check_reference(home.path(), &fixture_model("t5"), &reference("t5"));
}

#[test]
fn t5_config_variants_match_transformers() {
    // relu (t5-small: tied, keys omitted), gated-gelu untied (t5-v1_1),
    // gated-gelu tied.
    let home = tempfile::tempdir().unwrap();
    for dir in variant_dirs("t5_") {
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
        check_reference(home.path(), &dir, &reference);
    }
}

#[test]
fn t5_streams_the_text_without_json() {
    let home = tempfile::tempdir().unwrap();
    let reference = reference("t5");
    let out = run(cli(home.path())
        .args(["text2text", "--greedy", "--max-new-tokens", "12", "--model"])
        .arg(fixture_model("t5"))
        .arg(reference["inputs"]["texts"][0].as_str().unwrap()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = reference["generation"]["texts"][0]
        .as_str()
        .unwrap()
        .to_owned()
        + "\n";
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn text2text_bad_input_gets_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let t5 = fixture_model("t5");
    let text2text =
        |model: &Path, extra: &[&str]| failure_of(home.path(), "text2text", model, extra);
    let err = text2text(&t5, &["--max-new-tokens", "4", ""]);
    assert!(err.contains("empty"), "{err}");
    let err = text2text(&t5, &["--max-new-tokens", "0", "hello"]);
    assert!(err.contains("at least 1"), "{err}");
    let err = text2text(&fixture_model("gpt2"), &["--max-new-tokens", "4", "hello"]);
    assert!(err.contains("not an encoder-decoder"), "{err}");
    // A config missing a key T5 cannot do without.
    let broken = fixture_copy("t5", home.path());
    let config = broken.join("config.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("d_model");
    std::fs::write(&config, value.to_string()).unwrap();
    let err = text2text(&broken, &["--max-new-tokens", "4", "hello"]);
    assert!(err.contains("d_model"), "{err}");
}
