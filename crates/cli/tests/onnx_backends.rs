//! `--backend ort` / `--backend openvino` through the binary: the fixtures'
//! references reproduced on ONNX Runtime and its OpenVINO provider, the
//! install hint when the provider is missing, and `auto` falling back (and
//! naming the backend that ran) when a provider or a graph is broken.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// `cli` with the ONNX Runtime library (and the OpenVINO plugin when
/// `openvino`) from this process's environment; `None` (after reporting the
/// skip) when they are not installed.
fn ort_cli(home: &Path, test: &str, openvino: bool) -> Option<Command> {
    if let Some(reason) = ort_missing(openvino) {
        skip(test, reason);
        return None;
    }
    let mut cmd = cli(home);
    cmd.env("ORT_DYLIB_PATH", ort_dylib().unwrap());
    if openvino {
        cmd.env("IPFS_ACCELERATE_OPENVINO_EP", openvino_ep().unwrap());
    }
    Some(cmd)
}

#[test]
fn onnx_backends_reproduce_the_references() {
    let test = "onnx_backends_reproduce_the_references";
    let (texts, expected) = bert_reference();
    for backend in ["ort", "openvino"] {
        let home = tempfile::tempdir().unwrap();
        let Some(mut cmd) = ort_cli(home.path(), test, backend == "openvino") else {
            return;
        };
        let answer = json_ok(&run(cmd
            .args(["embed", "--json", "--backend", backend, "--model"])
            .arg(fixture_model("bert"))
            .args(&texts)));
        assert_eq!(answer["backend"], backend);
        for (i, (g, e)) in embeddings(&answer).iter().zip(&expected).enumerate() {
            let c = cosine(g, e);
            assert!(c >= 0.9999, "{backend} text {i}: cosine {c}");
        }
        for name in ["gpt2", "llama"] {
            let r = reference(name);
            let mut cmd = ort_cli(home.path(), test, backend == "openvino").unwrap();
            let answer = json_ok(&run(cmd
                .args(["generate", "--greedy", "--json", "--backend", backend])
                .args(["--max-new-tokens", "12", "--model"])
                .arg(fixture_model(name))
                .arg(r["inputs"]["prompt"].as_str().unwrap())));
            assert_eq!(answer["backend"], backend, "{name}");
            assert_eq!(
                id_list(&answer["token_ids"]),
                id_list(&r["prompt"]["token_ids"]),
                "{name} on {backend}"
            );
            assert_eq!(answer["text"], r["prompt"]["text"], "{name} on {backend}");
        }
    }
}

/// The answer's `{shape, data}` against the reference array, within
/// `tolerance`.
fn assert_array_close(
    got: &serde_json::Value,
    want: &serde_json::Value,
    what: &str,
    tolerance: f32,
) {
    assert_eq!(got["shape"], want["shape"], "{what}: shape");
    let diff = max_abs_diff(&f32_list(&got["data"]), &f32_list(&want["data"]));
    assert!(diff <= tolerance, "{what}: max abs diff {diff}");
}

#[test]
fn onnx_backends_reproduce_the_media_references() {
    let test = "onnx_backends_reproduce_the_media_references";
    let wav2vec2 = reference("wav2vec2");
    let clip = reference("clip");
    let texts: Vec<String> = serde_json::from_value(clip["inputs"]["texts"].clone()).unwrap();
    for backend in ["ort", "openvino"] {
        let home = tempfile::tempdir().unwrap();
        let Some(mut cmd) = ort_cli(home.path(), test, backend == "openvino") else {
            return;
        };
        // wav2vec2: same input values, logits, frame ids and CTC text.
        let model = fixture_model("wav2vec2");
        let answer = json_ok(&run(cmd
            .args(["transcribe", "--json", "--return-inputs", "--return-logits"])
            .args(["--backend", backend, "--model"])
            .arg(&model)
            .arg(model.join("input.wav"))));
        assert_eq!(answer["backend"], backend);
        let what = format!("wav2vec2 on {backend}");
        let (shape, want) = reference_array("wav2vec2", &wav2vec2["outputs"]["logits"]);
        let logits = &answer["outputs"]["logits"];
        assert_eq!(
            logits["shape"],
            serde_json::json!(shape),
            "{what}: logits shape"
        );
        let diff = max_abs_diff(&f32_list(&logits["data"]), &want);
        assert!(diff <= 1e-4, "{what}: logits max abs diff {diff}");
        let (shape, want) = reference_array("wav2vec2", &wav2vec2["preprocessed"]["input_values"]);
        let values = &answer["preprocessed"]["input_values"];
        assert_eq!(
            values["shape"],
            serde_json::json!(shape),
            "{what}: input_values shape"
        );
        let diff = max_abs_diff(&f32_list(&values["data"]), &want);
        assert!(diff <= 1e-4, "{what}: input_values max abs diff {diff}");
        assert_eq!(
            id_list(&answer["frame_ids"]),
            id_list(&wav2vec2["outputs"]["argmax_ids"]),
            "{what}"
        );
        assert_eq!(answer["text"], wav2vec2["outputs"]["text"], "{what}");
        // CLIP: the texts as one padded batch, against the image.
        let model = fixture_model("clip");
        let mut cmd = ort_cli(home.path(), test, backend == "openvino").unwrap();
        let answer = json_ok(&run(cmd
            .args([
                "similarity",
                "--json",
                "--return-inputs",
                "--return-embeddings",
            ])
            .args(["--backend", backend, "--model"])
            .arg(&model)
            .arg("--image")
            .arg(model.join("input.png"))
            .args(&texts)));
        assert_eq!(answer["backend"], backend);
        let what = format!("clip on {backend}");
        let logits = reference_rows(&clip["outputs"]["logits_per_image"]);
        let diff = max_abs_diff(&f32_list(&answer["logits"]), &logits[0]);
        assert!(diff <= 1e-4, "{what}: logits max abs diff {diff}");
        let probs = reference_rows(&clip["outputs"]["probs"]);
        let diff = max_abs_diff(&f32_list(&answer["probs"]), &probs[0]);
        assert!(diff <= 1e-5, "{what}: probs max abs diff {diff}");
        for (section, name) in [
            ("preprocessed", "pixel_values"),
            ("outputs", "text_embeds"),
            ("outputs", "image_embeds"),
        ] {
            assert_array_close(
                &answer[section][name],
                &clip[section][name],
                &format!("{what}: {name}"),
                1e-4,
            );
        }
    }
}

#[test]
fn status_describes_the_onnx_backends() {
    let home = tempfile::tempdir().unwrap();
    let Some(mut cmd) = ort_cli(home.path(), "status_describes_the_onnx_backends", true) else {
        return;
    };
    let answer = json_ok(&run(cmd.args(["status", "--json"])));
    let backends = answer["backends"].as_array().unwrap();
    for name in ["ort", "openvino"] {
        let b = backends.iter().find(|b| b["name"] == name).unwrap();
        assert_eq!(b["available"], true, "{b}");
        assert!(
            b["detail"].as_str().unwrap().contains("libonnxruntime.so"),
            "{b}"
        );
    }
    // Without the libraries they say what to run.
    let answer = json_ok(&run(cli(home.path()).args(["status", "--json"])));
    for b in answer["backends"].as_array().unwrap() {
        if b["name"] == "ort" || b["name"] == "openvino" {
            assert_eq!(b["available"], false, "{b}");
            assert!(
                b["detail"]
                    .as_str()
                    .unwrap()
                    .contains("cargo xtask setup-ort"),
                "{b}"
            );
        }
    }
}

#[test]
fn openvino_without_the_plugin_says_how_to_install_it() {
    let home = tempfile::tempdir().unwrap();
    let bert = fixture_model("bert");
    // Nothing installed.
    let line = failure_of(
        home.path(),
        "embed",
        &bert,
        &["--backend", "openvino", "hi"],
    );
    assert!(
        line.contains("openvino") && line.contains("cargo xtask setup-ort"),
        "{line}"
    );
    // ONNX Runtime, but no plugin: the variable to set is named.
    let test = "openvino_without_the_plugin_says_how_to_install_it";
    let Some(mut cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    let line = one_line_failure(&run(cmd
        .args(["embed", "--json", "--backend", "openvino", "--model"])
        .arg(&bert)
        .arg("hi")));
    assert!(line.contains("IPFS_ACCELERATE_OPENVINO_EP"), "{line}");
    assert!(line.contains("cargo xtask setup-ort"), "{line}");
}

#[test]
fn auto_falls_back_past_a_broken_provider_or_graph() {
    let test = "auto_falls_back_past_a_broken_provider_or_graph";
    let home = tempfile::tempdir().unwrap();
    let Some(_) = ort_cli(home.path(), test, false) else {
        return;
    };
    // A plugin file that is no library: OpenVINO is passed over, ORT runs.
    let fake = home.path().join("libfake_openvino_plugin.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let mut cmd = ort_cli(home.path(), test, false).unwrap();
    let answer = json_ok(&run(cmd
        .env("IPFS_ACCELERATE_OPENVINO_EP", &fake)
        .args(["embed", "--json", "--model"])
        .arg(fixture_model("bert"))
        .arg("hello")));
    assert_eq!(answer["backend"], "ort");
    // A graph no session can be made from: down the chain to candle, with
    // the same answer as the reference.
    let model = fixture_copy("gpt2", home.path());
    std::fs::write(model.join("onnx/model.onnx"), b"\x08\x07 truncated").unwrap();
    let r = reference("gpt2");
    let mut cmd = ort_cli(home.path(), test, openvino_ep().is_some()).unwrap();
    let out = run(cmd
        .args([
            "generate",
            "--greedy",
            "--json",
            "--max-new-tokens",
            "12",
            "--model",
        ])
        .arg(&model)
        .arg(r["inputs"]["prompt"].as_str().unwrap()));
    let answer = json_ok(&out);
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(
        id_list(&answer["token_ids"]),
        id_list(&r["prompt"]["token_ids"])
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("falling back"));
    // Asked for by name, the broken graph is the answer.
    let mut cmd = ort_cli(home.path(), test, false).unwrap();
    let line = one_line_failure(&run(cmd
        .args([
            "generate",
            "--greedy",
            "--json",
            "--backend",
            "ort",
            "--model",
        ])
        .arg(&model)
        .arg("hello")));
    assert!(line.contains("cannot create a session"), "{line}");
}

#[test]
fn skills_without_an_onnx_path_say_so() {
    let home = tempfile::tempdir().unwrap();
    let line = failure_of(
        home.path(),
        "generate",
        &fixture_model("opt"),
        &["--backend", "ort", "--greedy", "hello"],
    );
    assert!(
        line.contains("unsupported on ort: the model has no ONNX graph"),
        "{line}"
    );
    // Whisper and CLAP run on candle only (wav2vec2 and CLIP have graphs).
    let wav = fixture_model("whisper").join("input.wav");
    let line = one_line_failure(&run(cli(home.path())
        .args(["transcribe", "--json", "--backend", "openvino", "--model"])
        .arg(fixture_model("whisper"))
        .arg(&wav)));
    assert!(
        line.contains("unsupported on openvino: this skill has no ONNX Runtime path"),
        "{line}"
    );
    let clap = fixture_model("clap");
    let line = one_line_failure(&run(cli(home.path())
        .args(["similarity", "--json", "--backend", "ort", "--model"])
        .arg(&clap)
        .arg("--audio")
        .arg(clap.join("input.wav"))
        .arg("a dog")));
    assert!(
        line.contains("unsupported on ort: this skill has no ONNX Runtime path"),
        "{line}"
    );
}

#[test]
fn t5_on_onnx_backends_reproduces_the_reference() {
    let test = "t5_on_onnx_backends_reproduces_the_reference";
    let r = reference("t5");
    let texts = r["inputs"]["texts"].as_array().unwrap();
    let logits = reference_rows(&r["outputs"]["first_step_logits"]);
    let generation = &r["generation"];
    let eos = generation["eos_token_id"].as_u64().unwrap() as u32;
    // An incomplete export: asked for by name, the missing graphs are named
    // (with or without ONNX Runtime installed) ...
    let home = tempfile::tempdir().unwrap();
    let partial = fixture_copy("t5", home.path());
    std::fs::remove_file(partial.join("onnx/decoder_with_past_model.onnx")).unwrap();
    let line = failure_of(
        home.path(),
        "text2text",
        &partial,
        &["--backend", "openvino", "--greedy", "hello"],
    );
    assert!(
        line.contains("unsupported on openvino: the model has no ONNX graphs")
            && line.contains("onnx/decoder_with_past_model.onnx"),
        "{line}"
    );
    // ... and `auto` runs it on candle, with the reference's answer.
    let first = texts[0].as_str().unwrap();
    let mut want = id_list(&generation["token_ids"][0]);
    if let Some(end) = want.iter().position(|&t| t == eos) {
        want.truncate(end + 1);
    }
    if let Some(mut cmd) = ort_cli(home.path(), test, openvino_ep().is_some()) {
        let answer = json_ok(&run(cmd
            .args(["text2text", "--greedy", "--json", "--max-new-tokens", "12"])
            .arg("--model")
            .arg(&partial)
            .arg(first)));
        assert_eq!(answer["backend"], "cpu");
        assert_eq!(id_list(&answer["token_ids"]), want);
    }
    for backend in ["ort", "openvino"] {
        let home = tempfile::tempdir().unwrap();
        for (i, text) in texts.iter().enumerate() {
            let Some(mut cmd) = ort_cli(home.path(), test, backend == "openvino") else {
                return;
            };
            let answer = json_ok(&run(cmd
                .args(["text2text", "--greedy", "--json", "--return-logits"])
                .args(["--backend", backend, "--max-new-tokens", "12", "--model"])
                .arg(fixture_model("t5"))
                .arg(text.as_str().unwrap())));
            let name = format!("t5 text {i} on {backend}");
            assert_eq!(answer["backend"], backend, "{name}");
            let diff = max_abs_diff(&f32_list(&answer["last_logits"]), &logits[i]);
            assert!(
                diff <= 1e-4,
                "{name}: first-step logits max abs diff {diff}"
            );
            // The batched reference pads rows that ended early; we stop at EOS.
            let mut want = id_list(&generation["token_ids"][i]);
            if let Some(end) = want.iter().position(|&t| t == eos) {
                want.truncate(end + 1);
            }
            assert_eq!(id_list(&answer["token_ids"]), want, "{name}: token_ids");
            assert_eq!(answer["text"], generation["texts"][i], "{name}: text");
        }
    }
}
