//! `caption` reproduces transformers' LLaVA and LLaVA-NeXT for the fixtures
//! (expanded prompt ids, pixel values including LLaVA-NeXT's tiles, first
//! logits, greedy ids and text) and refuses bad input with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// `caption --greedy --return-inputs --return-logits` of the fixture's
/// image, `max_new_tokens` (a JSON number) new tokens.
fn caption_greedy(
    home: &Path,
    fixture: &Fixture,
    prompt: &serde_json::Value,
    max_new_tokens: &serde_json::Value,
) -> serde_json::Value {
    caption_greedy_on(home, fixture, (prompt, max_new_tokens), "cpu")
}

/// [`caption_greedy`] on `backend` (the ONNX backends export the fixture
/// on first use).
fn caption_greedy_on(
    home: &Path,
    fixture: &Fixture,
    (prompt, max_new_tokens): (&serde_json::Value, &serde_json::Value),
    backend: &str,
) -> serde_json::Value {
    let max_new = max_new_tokens.as_u64().unwrap().to_string();
    let extra = [
        "--max-new-tokens",
        &max_new,
        "--greedy",
        "--backend",
        backend,
    ];
    let extra = [&extra[..], &["--return-inputs", "--return-logits"]].concat();
    let answer = caption(
        cli_on(home, backend),
        &fixture.dir,
        prompt.as_str().unwrap(),
        &extra,
    );
    assert_eq!(answer["backend"], backend, "{}", fixture.name);
    answer
}

/// What a caption answer must reproduce.
struct Want<'a> {
    input_ids: &'a serde_json::Value,
    image_tokens: &'a serde_json::Value,
    last_logits: Vec<f32>,
    token_ids: &'a serde_json::Value,
    text: &'a serde_json::Value,
}

/// The expanded prompt ids, the image token count, the last logits
/// (within 1e-4), greedy ids and text of an answer.
fn assert_caption(name: &str, answer: &serde_json::Value, want: &Want<'_>) {
    assert_eq!(
        id_list(&answer["input_ids"]),
        id_list(want.input_ids),
        "{name}: input_ids"
    );
    assert_eq!(answer["image_tokens"], *want.image_tokens, "{name}");
    let logits = f32_list(&answer["last_logits"]);
    assert_close(
        &format!("{name}: last_logits"),
        &logits,
        &want.last_logits,
        1e-4,
    );
    assert_eq!(
        id_list(&answer["token_ids"]),
        id_list(want.token_ids),
        "{name}: token_ids"
    );
    assert_eq!(answer["text"], *want.text, "{name}: text");
}

fn check_fixture(name: &str) {
    let home = tempfile::tempdir().unwrap();
    let fixture = Fixture::new(name);
    let generation = &fixture["generation"];
    let prompt = &fixture["inputs"]["prompt"];
    let answer = caption_greedy(home.path(), &fixture, prompt, &generation["max_new_tokens"]);
    let want = Want {
        input_ids: &fixture["preprocessed"]["input_ids"]["data"],
        image_tokens: &fixture["preprocessed"]["num_image_tokens"],
        last_logits: fixture.array_at(&["outputs", "last_logits"]).data,
        token_ids: &generation["token_ids"],
        text: &generation["text"],
    };
    assert_caption(name, &answer, &want);
    let want = fixture.array_at(&["preprocessed", "pixel_values"]);
    let got = Array::from_json(&answer["preprocessed"]["pixel_values"]);
    // transformers batches images: [batch, ...]; ours is one image.
    let batched = want.shape.len() == 5;
    let want_shape = &want.shape[usize::from(batched)..];
    assert_eq!(got.shape, want_shape, "{name}: pixel_values shape");
    assert_close(
        &format!("{name}: pixel_values"),
        &got.data,
        &want.data,
        1e-4,
    );
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
    let variants = Fixture::variants("llava");
    assert!(variants.len() >= 5, "llava variants missing: {variants:?}");
    let home = tempfile::tempdir().unwrap();
    let backends = parity_backends("llava_variants_match_reference");
    for (backend, variant) in backends
        .iter()
        .flat_map(|b| variants.iter().map(move |v| (*b, v)))
    {
        let (name, r) = (
            &format!("{} on {backend}", variant.name),
            &variant.reference,
        );
        let answer = caption_greedy_on(
            home.path(),
            variant,
            (&r["prompt"], &r["max_new_tokens"]),
            backend,
        );
        let want = Want {
            input_ids: &r["input_ids"],
            image_tokens: &r["num_image_tokens"],
            last_logits: f32_list(&r["last_logits"]),
            token_ids: &r["token_ids"],
            text: &r["text"],
        };
        assert_caption(name, &answer, &want);
        let shape = shape_of(&answer["preprocessed"]["pixel_values"]["shape"]);
        let want = shape_of(&r["pixel_values_shape"]);
        assert_eq!(
            shape[..],
            want[want.len() - 4..],
            "{name}: pixel_values shape"
        );
    }
}

#[test]
fn prompt_without_image_token_gets_one_in_front() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("llava");
    let args = ["--max-new-tokens", "3", "--return-inputs"];
    let bare = caption(cli(home.path()), &model, "What is this?", &args);
    let explicit = caption(cli(home.path()), &model, "<image>\nWhat is this?", &args);
    assert_eq!(bare["input_ids"], explicit["input_ids"]);
    assert_eq!(bare["token_ids"], explicit["token_ids"]);
}

#[test]
fn bad_input_fails_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("llava");
    let image = model.join("input.png");
    let image = image.to_str().unwrap();
    let fail = |extra: &[&str]| failure_of(cli(home.path()), "caption", &model, extra);
    // A corrupt PNG (a truncated copy of the fixture's).
    let corrupt = home.path().join("corrupt.png");
    write_prefix(&model.join("input.png"), &corrupt, |n| n / 2);
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
        cli(home.path()),
        "caption",
        &fixture_model("llama"),
        &["--image", image, "<image> what?"],
    );
    assert!(err.contains("image-to-text"), "{err}");
}
