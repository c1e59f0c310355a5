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

/// The config variants of `fixtures/variants-src/make_llava_variants.py`:
/// `full` strategy, other and several feature layers, the in-memory weight
/// layout, LLaVA-NeXT on other aspect ratios.
#[test]
fn llava_variants_match_reference() {
    let dirs = variant_dirs("llava");
    assert!(dirs.len() >= 5, "llava variants missing: {dirs:?}");
    let home = tempfile::tempdir().unwrap();
    for model in dirs {
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(model.join("reference.json")).unwrap())
                .unwrap();
        let name = reference["variant"].as_str().unwrap().to_owned();
        let max_new = reference["max_new_tokens"].as_u64().unwrap().to_string();
        let answer = caption(
            home.path(),
            &model,
            reference["prompt"].as_str().unwrap(),
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
            id_list(&reference["input_ids"]),
            "{name}: input_ids"
        );
        assert_eq!(
            answer["image_tokens"], reference["num_image_tokens"],
            "{name}"
        );
        let shape: Vec<usize> =
            serde_json::from_value(answer["preprocessed"]["pixel_values"]["shape"].clone())
                .unwrap();
        let want: Vec<usize> =
            serde_json::from_value(reference["pixel_values_shape"].clone()).unwrap();
        assert_eq!(
            shape[..],
            want[want.len() - 4..],
            "{name}: pixel_values shape"
        );
        let diff = max_abs_diff(
            &f32_list(&answer["last_logits"]),
            &f32_list(&reference["last_logits"]),
        );
        assert!(diff <= 1e-4, "{name}: last_logits max abs diff {diff}");
        assert_eq!(
            id_list(&answer["token_ids"]),
            id_list(&reference["token_ids"]),
            "{name}: token_ids"
        );
        assert_eq!(answer["text"], reference["text"], "{name}: text");
    }
}

#[test]
fn prompt_without_image_token_gets_one_in_front() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("llava");
    let args = ["--max-new-tokens", "3", "--return-inputs"];
    let bare = caption(home.path(), &model, "What is this?", &args);
    let explicit = caption(home.path(), &model, "<image>\nWhat is this?", &args);
    assert_eq!(bare["input_ids"], explicit["input_ids"]);
    assert_eq!(bare["token_ids"], explicit["token_ids"]);
}

#[test]
fn bad_input_fails_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("llava");
    let image = model.join("input.png");
    let image = image.to_str().unwrap();
    let fail = |extra: &[&str]| failure_of(home.path(), "caption", &model, extra);
    // A corrupt PNG (a truncated copy of the fixture's).
    let corrupt = home.path().join("corrupt.png");
    let bytes = std::fs::read(model.join("input.png")).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let err = fail(&["--image", corrupt.to_str().unwrap(), "<image> what?"]);
    assert!(err.contains("corrupt.png"), "{err}");
    // Not an image at all.
    let text = home.path().join("notes.png");
    std::fs::write(&text, "just text").unwrap();
    let err = fail(&["--image", text.to_str().unwrap(), "<image> what?"]);
    assert!(err.contains("not a readable PNG or JPEG"), "{err}");
    // Empty prompt, two images, zero new tokens.
    let err = fail(&["--image", image, ""]);
    assert!(err.contains("prompt is empty"), "{err}");
    let err = fail(&["--image", image, "<image> and <image>"]);
    assert!(err.contains("2 '<image>' tokens"), "{err}");
    let err = fail(&["--image", image, "--max-new-tokens", "0", "<image> what?"]);
    assert!(err.contains("at least 1"), "{err}");
    // Longer than the 512 positions of the fixture's language model.
    let long = format!("<image> {}", "dog ".repeat(600));
    let err = fail(&["--image", image, &long]);
    assert!(err.contains("512 positions"), "{err}");
    // A text-only model is not a captioner.
    let err = failure_of(
        home.path(),
        "caption",
        &fixture_model("llama"),
        &["--image", image, "<image> what?"],
    );
    assert!(err.contains("image-to-text"), "{err}");
}
