//! `validate` compares one model on two backends. Here candle CPU against
//! itself (the only pair every machine has): the outputs must be identical,
//! and the report's fields present; ONNX Runtime pairs are in the ORT tests.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::ffi::OsStr;
use std::path::Path;

#[test]
fn cpu_against_itself_is_exact_for_each_skill() {
    let home = tempfile::tempdir().unwrap();
    for (model, compared, per_input) in [
        ("bert", "embeddings", 32),
        ("gpt2", "first-step logits", 600),
        ("t5", "first-step logits", 375),
    ] {
        let texts = ["--text", "one input", "--text", "and a second one"];
        let answer = json_of(
            cli(home.path())
                .args(["validate", "--json", "--backend", "cpu", "--against", "cpu"])
                .args(["--repeat", "2"])
                .args(texts)
                .arg("--model")
                .arg(fixture_model(model)),
        );
        assert_eq!(answer["compared"], compared, "{model}");
        assert_eq!(answer["inputs"], 2, "{model}");
        assert_eq!(answer["n"], 2 * per_input, "{model}");
        assert_eq!(answer["max_abs"], 0.0, "{model}");
        assert_eq!(answer["max_rel"], 0.0, "{model}");
        assert_eq!(answer["nan"], 0, "{model}");
        assert_eq!(answer["backend"], "cpu");
        assert_eq!(answer["against"], "cpu");
        let latency = answer["latency_ms"].as_object().unwrap();
        assert_eq!(latency.len(), 2, "{model}");
        assert!(latency.values().all(|v| v.as_f64().unwrap() > 0.0));
    }
}

#[test]
fn bad_requests_fail_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let fail = |model: &str, extra: &[&str]| {
        let mut args = vec!["--backend", "cpu", "--against", "cpu"];
        args.extend_from_slice(extra);
        failure_of(cli(home.path()), "validate", &fixture_model(model), &args)
    };
    let err = fail("clip", &[]);
    assert!(err.contains("similarity model"), "{err}");
    let err = fail("bert", &["--repeat", "0"]);
    assert!(err.contains("--repeat"), "{err}");
    let err = fail("bert", &["--text", ""]);
    assert!(err.contains("must not be empty"), "{err}");
}

/// The use: an ONNX backend against candle on the fixtures that
/// ship a graph; the discrepancy is that of two implementations, small.
#[test]
fn onnx_backends_against_cpu_are_within_1e4() {
    let test = "onnx_backends_against_cpu_are_within_1e4";
    let home = tempfile::tempdir().unwrap();
    for backend in ["ort", "openvino"] {
        let openvino = backend == "openvino";
        if ort_missing_skip(test, openvino) {
            return;
        }
        // opt, t5's variant-free fixture: from graphs exported on first use
        // (opt ships none) or its own (t5).
        for model in ["bert", "gpt2", "opt", "llama", "t5"] {
            let mut cmd = with_ort(cli(home.path()), test, openvino).unwrap();
            let answer = json_of(
                cmd.args(["validate", "--json", "--against", "cpu", "--repeat", "1"])
                    .args(["--backend", backend, "--model"])
                    .arg(fixture_model(model)),
            );
            assert_eq!(answer["backend"], backend, "{model}");
            assert_eq!(answer["against"], "cpu", "{model}");
            assert_eq!(answer["nan"], 0, "{model} on {backend}");
            let max_abs = answer["max_abs"].as_f64().unwrap();
            assert!(max_abs <= 1e-4, "{model} on {backend}: max_abs {max_abs}");
            assert!(answer["n"].as_u64().unwrap() > 0);
        }
    }
}

/// Speech models are compared on recordings: Whisper's logits at the end
/// of its prefix, a CTC model's for every frame; on ONNX Runtime from the
/// graphs exported on first use (the fixtures copied without `onnx/`).
#[test]
fn speech_models_are_validated_on_recordings() {
    let test = "speech_models_are_validated_on_recordings";
    let home = tempfile::tempdir().unwrap();
    for (model, compared) in [("whisper", "first-step logits"), ("wav2vec2", "CTC logits")] {
        let wav = fixture_model(model).join("input.wav");
        let answer = json_of(
            cli(home.path())
                .args(["validate", "--json", "--backend", "cpu", "--against", "cpu"])
                .args(["--repeat", "1", "--audio"])
                .arg(&wav)
                .arg("--model")
                .arg(fixture_model(model)),
        );
        assert_eq!(answer["compared"], compared, "{model}");
        assert_eq!(answer["inputs"], 1, "{model}");
        assert_eq!(answer["max_abs"], 0.0, "{model}");
        let err = failure_of(
            cli(home.path()),
            "validate",
            &fixture_model(model),
            &["--backend", "cpu", "--against", "cpu"],
        );
        assert!(err.contains("--audio"), "{err}");
        let inputs = [OsStr::new("--audio"), wav.as_os_str()];
        onnx_backends_agree_with_cpu(test, home.path(), model, &inputs);
    }
    let err = failure_of(
        cli(home.path()),
        "validate",
        &fixture_model("bert"),
        &["--backend", "cpu", "--against", "cpu", "--audio", "x.wav"],
    );
    assert!(err.contains("speech models"), "{err}");
}

/// Dual encoders are compared on texts against their media (logits and
/// embeddings), image-to-text models on images with each text as the
/// prompt (first-step logits); on ONNX Runtime from the graphs exported on
/// first use (the fixtures copied without `onnx/`).
#[test]
fn media_models_are_validated_on_their_media() {
    let test = "media_models_are_validated_on_their_media";
    let home = tempfile::tempdir().unwrap();
    let cases = [
        ("clip", "--image", "input.png", "logits and embeddings"),
        ("clap", "--audio", "input.wav", "logits and embeddings"),
        ("xclip", "--video", "frames", "logits and embeddings"),
        ("llava", "--image", "input.png", "first-step logits"),
        ("llava_next", "--image", "input.png", "first-step logits"),
    ];
    for (model, flag, media, compared) in cases {
        let media = fixture_model(model).join(media);
        let answer = json_of(
            cli(home.path())
                .args(["validate", "--json", "--backend", "cpu", "--against", "cpu"])
                .args(["--repeat", "1", "--text", "a dog", flag])
                .arg(&media)
                .arg("--model")
                .arg(fixture_model(model)),
        );
        assert_eq!(answer["compared"], compared, "{model}");
        assert_eq!(answer["inputs"], 1, "{model}");
        assert_eq!(answer["max_abs"], 0.0, "{model}");
        assert!(answer["n"].as_u64().unwrap() > 0, "{model}");
        let err = failure_of(
            cli(home.path()),
            "validate",
            &fixture_model(model),
            &["--backend", "cpu", "--against", "cpu"],
        );
        assert!(err.contains(flag), "{model}: {err}");
        let inputs = [
            OsStr::new("--text"),
            OsStr::new("a dog"),
            OsStr::new(flag),
            media.as_os_str(),
        ];
        onnx_backends_agree_with_cpu(test, home.path(), model, &inputs);
    }
    let err = failure_of(
        cli(home.path()),
        "validate",
        &fixture_model("bert"),
        &["--backend", "cpu", "--against", "cpu", "--image", "x.png"],
    );
    assert!(err.contains("--image and --video are for"), "{err}");
}

/// `validate --against cpu` of fixture `model` on `ort` and `openvino`
/// (where they run) over `inputs`, from a copy of the fixture without
/// `onnx/`, so the graphs are exported on first use: each answer names its
/// backend and stays within 1e-4 of candle's.
fn onnx_backends_agree_with_cpu(test: &str, home: &Path, model: &str, inputs: &[&OsStr]) {
    for backend in ["ort", "openvino"] {
        let openvino = backend == "openvino";
        if ort_missing_skip(test, openvino) {
            continue;
        }
        let copy = home.join(format!("{model}-no-onnx"));
        if !copy.exists() {
            copy_dir(&fixture_model(model), &copy).unwrap();
            std::fs::remove_dir_all(copy.join("onnx")).ok();
        }
        let mut cmd = with_ort(cli(home), test, openvino).unwrap();
        let answer = json_of(
            cmd.args(["validate", "--json", "--against", "cpu", "--repeat", "1"])
                .args(["--backend", backend])
                .args(inputs)
                .arg("--model")
                .arg(&copy),
        );
        assert_eq!(answer["backend"], backend, "{model}");
        let max_abs = answer["max_abs"].as_f64().unwrap();
        assert!(max_abs <= 1e-4, "{model} on {backend}: max_abs {max_abs}");
    }
}
