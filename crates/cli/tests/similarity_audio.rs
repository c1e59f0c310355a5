//! `similarity --audio` reproduces transformers' CLAP for the fixture
//! (input features, embeddings, logits, probabilities) and refuses bad
//! input with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

#[test]
fn clap_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let clap = Fixture::new("clap");
    let audio = clap.file(clap["inputs"]["audio_file"].as_str().unwrap());
    let [features, text, audio, logits, probs] = check_similarity_fixture(
        cli(home.path()),
        &clap,
        ("--audio", &audio),
        "input_features",
    );
    eprintln!(
        "max abs diff: input_features {features:e}, text_embeds {text:e}, audio_embeds {audio:e}, logits {logits:e}, probs {probs:e}"
    );
}

#[test]
fn clap_refuses_bad_input_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("clap");
    let wav = model.join("input.wav");
    let audio = |path: &Path, text: &str| {
        similarity_failure(cli(home.path()), &model, ("--audio", path), text)
    };
    // A WAV with a header and no samples.
    let empty = home.path().join("empty.wav");
    write_wav(&empty, pcm16(1, 16_000), &[]);
    let err = audio(&empty, "a dog");
    assert!(
        err.contains("empty.wav") && err.contains("holds no samples"),
        "{err}"
    );
    // Not a WAV file.
    let err = audio(&model.join("config.json"), "a dog");
    assert!(err.contains("not a readable audio file"), "{err}");
    // A text longer than the 64 tokens the positions allow (66 - 2).
    let long = "dog ".repeat(100);
    let err = audio(&wav, &long);
    assert!(err.contains("the model takes at most 64"), "{err}");
    // CLAP takes audio, not images.
    let image = fixture_model("clip").join("input.png");
    let err = similarity_failure(cli(home.path()), &model, ("--image", &image), "a dog");
    assert!(err.contains("takes audio (--audio), not an image"), "{err}");
}
