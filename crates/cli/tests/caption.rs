//! `caption` reproduces transformers' LLaVA and LLaVA-NeXT for the fixtures
//! (expanded prompt ids, pixel values including LLaVA-NeXT's tiles, first
//! logits, greedy ids and text) and refuses bad input with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn caption(home: &Path, model: &Path, prompt: &str, extra: &[&str]) -> serde_json::Value {
    let out = run(cli(home)
        .args(["caption", "--json", "--model"])
        .arg(model)
        .arg("--image")
        .arg(model.join("input.png"))
        .args(extra)
        .arg(prompt));
    json_ok(&out)
}

fn check_fixture(name: &str) {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model(name);
    let reference = reference(name);
    let generation = &reference["generation"];
    let max_new = generation["max_new_tokens"].as_u64().unwrap().to_string();
    let answer = caption(
        home.path(),
        &model,
        reference["inputs"]["prompt"].as_str().unwrap(),
        &[
            "--max-new-tokens",
            &max_new,
            "--greedy",
            "--return-inputs",
            "--return-logits",
        ],
    );
    assert_eq!(
        id_list(&answer["input_ids"]),
        id_list(&reference["preprocessed"]["input_ids"]["data"]),
        "{name}: input_ids"
    );
    assert_eq!(
        answer["image_tokens"],
        reference["preprocessed"]["num_image_tokens"]
    );
    let (shape, want) = reference_array(name, &reference["preprocessed"]["pixel_values"]);
    let got = &answer["preprocessed"]["pixel_values"];
    // transformers batches images: [batch, ...]; ours is one image.
    let got_shape: Vec<usize> = serde_json::from_value(got["shape"].clone()).unwrap();
    let want_shape: Vec<usize> = if shape.len() == 5 {
        shape[1..].to_vec()
    } else {
        shape.clone()
    };
    assert_eq!(got_shape, want_shape, "{name}: pixel_values shape");
    let diff = max_abs_diff(&f32_list(&got["data"]), &want);
    assert!(diff <= 1e-4, "{name}: pixel_values max abs diff {diff}");
    let (_, last_logits) = reference_array(name, &reference["outputs"]["last_logits"]);
    let diff = max_abs_diff(&f32_list(&answer["last_logits"]), &last_logits);
    assert!(diff <= 1e-4, "{name}: last_logits max abs diff {diff}");
    assert_eq!(
        id_list(&answer["token_ids"]),
        id_list(&generation["token_ids"]),
        "{name}: token_ids"
    );
    assert_eq!(answer["text"], generation["text"], "{name}: text");
    assert_eq!(answer["backend"], "cpu");
}

#[test]
fn llava_fixture_matches_reference() {
    check_fixture("llava");
}

#[test]
fn llava_next_fixture_matches_reference() {
    check_fixture("llava_next");
}
