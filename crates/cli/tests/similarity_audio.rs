//! `similarity --audio` reproduces transformers' CLAP for the fixture
//! (input features, embeddings, logits, probabilities) and refuses bad
//! input with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn texts(reference: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(reference["inputs"]["texts"].clone()).unwrap()
}

/// The answer's `{shape, data}` against a reference array (read from
/// `reference.safetensors`), within `tolerance`; returns the difference.
fn assert_array_close(got: &serde_json::Value, want: &serde_json::Value, tolerance: f32) -> f32 {
    let (shape, data) = reference_array("clap", want);
    let got_shape: Vec<usize> = serde_json::from_value(got["shape"].clone()).unwrap();
    assert_eq!(got_shape, shape, "{}: shape", want["key"]);
    let diff = max_abs_diff(&f32_list(&got["data"]), &data);
    assert!(diff <= tolerance, "{}: max abs diff {diff}", want["key"]);
    diff
}

#[test]
fn clap_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("clap");
    let reference = reference("clap");
    let out = run(cli(home.path())
        .args([
            "similarity",
            "--json",
            "--return-inputs",
            "--return-embeddings",
            "--model",
        ])
        .arg(&model)
        .arg("--audio")
        .arg(model.join(reference["inputs"]["audio_file"].as_str().unwrap()))
        .args(texts(&reference)));
    let answer = json_ok(&out);
    let features = assert_array_close(
        &answer["preprocessed"]["input_features"],
        &reference["preprocessed"]["input_features"],
        1e-4,
    );
    let text = assert_array_close(
        &answer["outputs"]["text_embeds"],
        &reference["outputs"]["text_embeds"],
        1e-4,
    );
    let audio = assert_array_close(
        &answer["outputs"]["audio_embeds"],
        &reference["outputs"]["audio_embeds"],
        1e-4,
    );
    let logits = reference_rows(&reference["outputs"]["logits_per_audio"]);
    let logits_diff = max_abs_diff(&f32_list(&answer["logits"]), &logits[0]);
    assert!(logits_diff <= 1e-4, "logits: max abs diff {logits_diff}");
    let probs = reference_rows(&reference["outputs"]["probs"]);
    let probs_diff = max_abs_diff(&f32_list(&answer["probs"]), &probs[0]);
    assert!(probs_diff <= 1e-5, "probs: max abs diff {probs_diff}");
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], model.to_str().unwrap());
    eprintln!(
        "max abs diff: input_features {features:e}, text_embeds {text:e}, audio_embeds {audio:e}, logits {logits_diff:e}, probs {probs_diff:e}"
    );
}

#[test]
fn clap_refuses_bad_input_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("clap");
    let wav = model.join("input.wav");
    let fail = |args: &[&str]| failure_of(home.path(), "similarity", &model, args);
    let audio_args = |path: &Path, text: &str| {
        vec![
            "--audio".to_owned(),
            path.to_str().unwrap().to_owned(),
            text.to_owned(),
        ]
    };
    let run_fail = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fail(&args)
    };
    // A WAV with a header and no samples.
    let empty = home.path().join("empty.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    hound::WavWriter::create(&empty, spec)
        .unwrap()
        .finalize()
        .unwrap();
    let err = run_fail(audio_args(&empty, "a dog"));
    assert!(
        err.contains("empty.wav") && err.contains("holds no samples"),
        "{err}"
    );
    // Not a WAV file.
    let err = run_fail(audio_args(&model.join("config.json"), "a dog"));
    assert!(err.contains("not a readable WAV file"), "{err}");
    // A text longer than the 64 tokens the positions allow (66 - 2).
    let long = "dog ".repeat(100);
    let err = run_fail(audio_args(&wav, &long));
    assert!(err.contains("the model takes at most 64"), "{err}");
    // CLAP takes audio, not images.
    let image = fixture_model("clip").join("input.png");
    let err = fail(&["--image", image.to_str().unwrap(), "a dog"]);
    assert!(err.contains("takes audio (--audio), not an image"), "{err}");
}
