//! `text2text` reproduces transformers' greedy generation for T5 (the shared
//! fixture and our config-variant fixtures: relu vs gated-gelu feed-forward,
//! tied vs untied head, a config that omits `tie_word_embeddings`), and
//! refuses bad input with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// Runs every text of a reference alone and checks the first decoder step's
/// logits, the greedy ids and their text.
fn check_reference(home: &Path, fixture: &Fixture) {
    check_reference_on(home, fixture, "cpu");
}

/// The fixture's references on `backend`.
fn check_reference_on(home: &Path, fixture: &Fixture, backend: &str) {
    let model = &fixture.dir;
    let logits = &fixture["outputs"]["first_step_logits"];
    // The shared fixture stores `{shape, data}`, the variants a list per text.
    let rows: Vec<Vec<f32>> = if logits.get("data").is_some() {
        reference_rows(logits)
    } else {
        serde_json::from_value(logits.clone()).unwrap()
    };
    let generation = &fixture["generation"];
    let new_tokens = generation["max_new_tokens"].as_u64().unwrap() as usize;
    for (i, text) in fixture.texts().iter().enumerate() {
        let name = format!("{} text {i} on {backend}", model.display());
        let extra = ["--return-logits", "--backend", backend];
        let answer = greedy(
            cli_on(home, backend),
            "text2text",
            model,
            text,
            new_tokens,
            &extra,
        );
        assert_t5_answer(&name, &answer, &rows[i], generation, i);
        assert_eq!(answer["backend"], backend, "{name}");
        assert_eq!(answer["model"], model.to_str().unwrap(), "{name}");
    }
}

#[test]
fn t5_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    check_reference(home.path(), &Fixture::new("t5"));
}

#[test]
fn t5_config_variants_match_transformers() {
    // relu (t5-small: tied, keys omitted), gated-gelu untied (t5-v1_1),
    // gated-gelu tied.
    let home = tempfile::tempdir().unwrap();
    for backend in parity_backends("t5_config_variants_match_transformers") {
        for variant in Fixture::variants("t5_") {
            check_reference_on(home.path(), &variant, backend);
        }
    }
}

#[test]
fn t5_streams_the_text_without_json() {
    let home = tempfile::tempdir().unwrap();
    let t5 = Fixture::new("t5");
    let stdout = streamed(cli(home.path()), "text2text", &t5.dir, &t5.texts()[0], 12);
    assert_eq!(
        stdout,
        format!("{}\n", t5["generation"]["texts"][0].as_str().unwrap())
    );
}

#[test]
fn text2text_bad_input_gets_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let t5 = fixture_model("t5");
    assert_refuses_empty_prompt_and_no_tokens(|| cli(home.path()), "text2text", &t5);
    let text2text =
        |model: &Path, extra: &[&str]| failure_of(cli(home.path()), "text2text", model, extra);
    let err = text2text(&fixture_model("gpt2"), &["--max-new-tokens", "4", "hello"]);
    assert!(err.contains("not an encoder-decoder"), "{err}");
    // A config missing a key T5 cannot do without.
    let broken = fixture_copy("t5", home.path());
    edit_json(&broken.join("config.json"), |config| {
        config.as_object_mut().unwrap().remove("d_model");
    });
    let err = text2text(&broken, &["--max-new-tokens", "4", "hello"]);
    assert!(err.contains("d_model"), "{err}");
}
