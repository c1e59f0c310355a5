//! `validate` compares one model on two backends. Here candle CPU against
//! itself (the only pair every machine has): the outputs must be identical,
//! and the report's fields present; ONNX Runtime pairs are in the ORT tests.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

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
        for model in ["bert", "gpt2", "llama"] {
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
