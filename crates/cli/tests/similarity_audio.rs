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

/// The first `n` samples of a 16-bit WAV, written as `out`.
fn wav_prefix(wav: &Path, n: usize, out: &Path) {
    let mut reader = hound::WavReader::open(wav).unwrap();
    let spec = reader.spec();
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .take(n)
        .map(Result::unwrap)
        .collect();
    let mut writer = hound::WavWriter::create(out, spec).unwrap();
    for s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

/// CLAP and its config variants (`fixtures/models/variants/clap_*`: fused
/// with 4-channel features, an odd patch grid) reproduce transformers on
/// every backend: embeddings and logits within 1e-4, probabilities within
/// 1e-5. On the ONNX backends the fixtures have no graph, so the two CLAP
/// graphs are exported on first use.
#[test]
fn clap_and_its_variants_match_reference_on_every_backend() {
    let test = "clap_and_its_variants_match_reference_on_every_backend";
    let home = tempfile::tempdir().unwrap();
    let clap = Fixture::new("clap");
    let audio = clap.file("input.wav");
    let variants = ["clap_fused", "clap_odd_grid"];
    for backend in parity_backends(test) {
        let extra = ["--backend", backend];
        let cmd = cli_on(home.path(), backend);
        let answer = similarity(cmd, &clap.dir, ("--audio", &audio), &clap.texts(), &extra);
        assert_eq!(answer["backend"], backend);
        let what = format!("clap on {backend}");
        assert_similarity_reference(&what, &clap, &answer, "input_features", "audio");
        for variant in variants {
            let dir = fixture_model("variants").join(variant);
            let reference = read_json(&dir.join("reference.json"));
            for case in reference["cases"].as_array().unwrap() {
                let key = format!("{variant} {} on {backend}", case["name"].as_str().unwrap());
                let wav = home.path().join(format!("{variant}.wav"));
                let samples = case["num_samples"].as_u64().unwrap() as usize;
                wav_prefix(&dir.join("input.wav"), samples, &wav);
                let texts: Vec<String> = serde_json::from_value(case["texts"].clone()).unwrap();
                let cmd = cli_on(home.path(), backend);
                let answer = similarity(cmd, &dir, ("--audio", &wav), &texts, &extra);
                assert_eq!(answer["backend"], backend, "{key}");
                for (got, want) in [
                    (&answer["outputs"]["text_embeds"], &case["text_embeds"]),
                    (&answer["outputs"]["audio_embeds"], &case["audio_embeds"]),
                ] {
                    assert_array_close(&key, got, &Array::from_json(want), 1e-4);
                }
                let logits = Array::from_json(&case["logits_per_audio"]);
                let probs = Array::from_json(&case["probs"]);
                assert_scores(&key, &answer, &logits.rows()[0], &probs.rows()[0]);
            }
        }
    }
}
