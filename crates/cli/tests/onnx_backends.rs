//! `--backend ort` / `--backend openvino` through the binary: the fixtures'
//! references reproduced on ONNX Runtime and its OpenVINO provider, the
//! install hint when the provider is missing, and `auto` falling back (and
//! naming the backend that ran) when a provider or a graph is broken.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const BACKENDS: [&str; 2] = ["ort", "openvino"];

/// `cli` with the ONNX Runtime library (and the OpenVINO plugin when
/// `openvino`) from this process's environment; `None` (after reporting the
/// skip) when they are not installed.
fn ort_cli(home: &Path, test: &str, openvino: bool) -> Option<Command> {
    with_ort(cli(home), test, openvino)
}

#[test]
fn onnx_backends_reproduce_the_references() {
    let test = "onnx_backends_reproduce_the_references";
    let (texts, expected) = bert_reference();
    for backend in BACKENDS {
        let home = tempfile::tempdir().unwrap();
        let openvino = backend == "openvino";
        let Some(cmd) = ort_cli(home.path(), test, openvino) else {
            return;
        };
        let on_backend = ["--backend", backend];
        let answer = embed(cmd, fixture_model("bert"), &texts, &on_backend);
        assert_eq!(answer["backend"], backend);
        assert_cosines(backend, &embeddings(&answer), &expected, 0.9999);
        for name in ["gpt2", "llama"] {
            let r = reference(name);
            let cmd = ort_cli(home.path(), test, openvino).unwrap();
            let prompt = r["inputs"]["prompt"].as_str().unwrap();
            let answer = greedy(
                cmd,
                "generate",
                &fixture_model(name),
                prompt,
                12,
                &on_backend,
            );
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

#[test]
fn onnx_backends_reproduce_the_media_references() {
    let test = "onnx_backends_reproduce_the_media_references";
    let wav2vec2 = Fixture::new("wav2vec2");
    let clip = Fixture::new("clip");
    let texts = clip.texts();
    for backend in BACKENDS {
        let home = tempfile::tempdir().unwrap();
        let openvino = backend == "openvino";
        let Some(cmd) = ort_cli(home.path(), test, openvino) else {
            return;
        };
        // wav2vec2: same input values, logits, frame ids and CTC text.
        let extra = ["--return-inputs", "--return-logits", "--backend", backend];
        let audio = wav2vec2.file("input.wav");
        let answer = transcribe(cmd, &wav2vec2.dir, &audio, &extra);
        assert_eq!(answer["backend"], backend);
        assert_wav2vec2_reference(&format!("wav2vec2 on {backend}"), &wav2vec2, &answer);
        // CLIP: the texts as one padded batch, against the image.
        let cmd = ort_cli(home.path(), test, openvino).unwrap();
        let image = clip.file("input.png");
        let answer = similarity(cmd, &clip.dir, ("--image", &image), &texts, &extra[2..]);
        assert_eq!(answer["backend"], backend);
        let what = format!("clip on {backend}");
        assert_similarity_reference(&what, &clip, &answer, "pixel_values", "image");
        // Whisper on optimum's three graphs: ids exact, prefix logits close.
        let whisper = Fixture::new("whisper");
        let cmd = ort_cli(home.path(), test, openvino).unwrap();
        let extra = [
            "--return-logits",
            "--max-new-tokens",
            "12",
            "--backend",
            backend,
        ];
        let answer = transcribe(cmd, &whisper.dir, &whisper.file("input.wav"), &extra);
        assert_eq!(answer["backend"], backend);
        assert!(graph_sources(&answer).iter().all(|s| s == "local_folder"));
        let (exact, max_abs) = parity(Check::Whisper, &answer, &whisper.reference, "whisper");
        assert!(
            exact && max_abs <= 1e-4,
            "whisper on {backend}: {max_abs:e}"
        );
    }
}

#[test]
fn status_describes_the_onnx_backends() {
    let home = tempfile::tempdir().unwrap();
    let test = "status_describes_the_onnx_backends";
    let Some(mut cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    // The plugin is installed whatever the processor: status must say
    // whether it can run here, and why not.
    let Some(plugin) = openvino_ep() else {
        return skip(
            test,
            "OpenVINO EP not installed (run `cargo xtask setup-ort`)",
        );
    };
    cmd.env("IPFS_ACCELERATE_OPENVINO_EP", plugin);
    let answer = json_of(cmd.args(["status", "--json"]));
    let unsupported_cpu = openvino_unsupported_cpu();
    for name in BACKENDS {
        let b = status_backend(&answer, name);
        let detail = b["detail"].as_str().unwrap();
        if name == "openvino" && unsupported_cpu.is_some() {
            assert_eq!(b["available"], false, "{b}");
            assert!(detail.contains("runs on Intel processors"), "{b}");
            continue;
        }
        assert_eq!(b["available"], true, "{b}");
        assert!(detail.contains("libonnxruntime.so"), "{b}");
    }
    // Without the libraries they say what to run.
    let answer = json_of(cli(home.path()).args(["status", "--json"]));
    for b in answer["backends"].as_array().unwrap() {
        if b["name"] == "ort" || b["name"] == "openvino" {
            assert_eq!(b["available"], false, "{b}");
            let detail = b["detail"].as_str().unwrap();
            assert!(detail.contains("cargo xtask setup-ort"), "{b}");
        }
    }
}

#[test]
fn openvino_without_the_plugin_says_how_to_install_it() {
    let home = tempfile::tempdir().unwrap();
    let bert = fixture_model("bert");
    let on_openvino = ["--backend", "openvino", "hi"];
    // Nothing installed.
    let line = failure_of(cli(home.path()), "embed", &bert, &on_openvino);
    assert!(
        line.contains("openvino") && line.contains("cargo xtask setup-ort"),
        "{line}"
    );
    // ONNX Runtime, but no plugin: the variable to set is named.
    let test = "openvino_without_the_plugin_says_how_to_install_it";
    let Some(cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    let line = failure_of(cmd, "embed", &bert, &on_openvino);
    assert!(line.contains("IPFS_ACCELERATE_OPENVINO_EP"), "{line}");
    assert!(line.contains("cargo xtask setup-ort"), "{line}");
}

#[test]
fn auto_falls_back_past_a_broken_provider_or_graph() {
    let test = "auto_falls_back_past_a_broken_provider_or_graph";
    let home = tempfile::tempdir().unwrap();
    let Some(mut cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    // A plugin file that is no library: OpenVINO is passed over, ORT runs.
    let fake = home.path().join("libfake_openvino_plugin.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    cmd.env("IPFS_ACCELERATE_OPENVINO_EP", &fake);
    let answer = embed(cmd, fixture_model("bert"), &["hello"], &[]);
    assert_eq!(answer["backend"], "ort");
    // A graph no session can be made from: down the chain to candle, with
    // the same answer as the reference.
    let model = fixture_copy("gpt2", home.path());
    std::fs::write(model.join("onnx/model.onnx"), b"\x08\x07 truncated").unwrap();
    let r = reference("gpt2");
    // With the plugin where it can run, so the chain starts at OpenVINO.
    let openvino = openvino_ep().is_some() && openvino_unsupported_cpu().is_none();
    let mut cmd = ort_cli(home.path(), test, openvino).unwrap();
    let out = run(cmd
        .args(["generate", "--greedy", "--json", "--max-new-tokens", "12"])
        .arg("--model")
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
    let cmd = ort_cli(home.path(), test, false).unwrap();
    let line = failure_of(
        cmd,
        "generate",
        &model,
        &["--greedy", "--backend", "ort", "hello"],
    );
    assert!(line.contains("cannot create a session"), "{line}");
}

#[test]
fn models_without_their_graphs_say_which() {
    let home = tempfile::tempdir().unwrap();
    let fail = |command: &str, model: &str, extra: &[&str]| {
        failure_of(cli(home.path()), command, &fixture_model(model), extra)
    };
    // Without exporting on first use, a model without a graph has none.
    let line = fail(
        "generate",
        "opt",
        &["--backend", "ort", "--no-export", "--greedy", "hello"],
    );
    assert!(
        line.contains("unsupported on ort: the model has no ONNX graph"),
        "{line}"
    );
    // Whisper without its graphs, not exporting: the three files are named.
    let whisper = without_graphs(home.path(), "whisper");
    let wav = whisper.join("input.wav");
    let line = failure_of(
        cli(home.path()),
        "transcribe",
        &whisper,
        &[
            "--backend",
            "openvino",
            "--no-export",
            wav.to_str().unwrap(),
        ],
    );
    assert!(
        line.contains("unsupported on openvino: the model has no ONNX graphs")
            && line.contains("onnx/decoder_with_past_model.onnx"),
        "{line}"
    );
    // CLAP without its two graphs, not exporting: both are named.
    let wav = fixture_model("clap").join("input.wav");
    let extra = [
        "--backend",
        "ort",
        "--no-export",
        "--audio",
        wav.to_str().unwrap(),
        "a dog",
    ];
    let line = fail("similarity", "clap", &extra);
    assert!(
        line.contains("unsupported on ort: the model has no ONNX graphs")
            && line.contains("onnx/audio_model.onnx"),
        "{line}"
    );
}

#[test]
fn t5_on_onnx_backends_reproduces_the_reference() {
    let test = "t5_on_onnx_backends_reproduces_the_reference";
    let t5 = Fixture::new("t5");
    let texts = t5.texts();
    let logits = reference_rows(&t5["outputs"]["first_step_logits"]);
    let generation = &t5["generation"];
    let eos = generation["eos_token_id"].as_u64().unwrap() as u32;
    // An incomplete export: asked for by name, the missing graphs are named
    // (with or without ONNX Runtime installed) ...
    let home = tempfile::tempdir().unwrap();
    let partial = fixture_copy("t5", home.path());
    // (The merged decoder goes too: from it, the two decoders would be made.)
    for file in ["decoder_with_past_model.onnx", "decoder_model_merged.onnx"] {
        std::fs::remove_file(partial.join("onnx").join(file)).unwrap();
    }
    // (Not exporting: with an exporter, the graphs would be made whole.)
    let extra = ["--backend", "openvino", "--no-export", "--greedy", "hello"];
    let line = failure_of(cli(home.path()), "text2text", &partial, &extra);
    assert!(
        line.contains("unsupported on openvino: the model has no ONNX graphs")
            && line.contains("onnx/decoder_with_past_model.onnx"),
        "{line}"
    );
    // ... and `auto` runs it on candle, with the reference's answer.
    let want = through_eos(id_list(&generation["token_ids"][0]), eos);
    if let Some(cmd) = ort_cli(home.path(), test, openvino_ep().is_some()) {
        let answer = greedy(cmd, "text2text", &partial, &texts[0], 12, &["--no-export"]);
        assert_eq!(answer["backend"], "cpu");
        assert_eq!(id_list(&answer["token_ids"]), want);
    }
    for backend in BACKENDS {
        let home = tempfile::tempdir().unwrap();
        for (i, text) in texts.iter().enumerate() {
            let Some(cmd) = ort_cli(home.path(), test, backend == "openvino") else {
                return;
            };
            let extra = ["--return-logits", "--backend", backend];
            let answer = greedy(cmd, "text2text", &t5.dir, text, 12, &extra);
            let name = format!("t5 text {i} on {backend}");
            assert_eq!(answer["backend"], backend, "{name}");
            assert_t5_answer(&name, &answer, &logits[i], generation, i);
        }
    }
}

/// A copy of fixture `name` without its `onnx/` folder, under `home`.
fn without_graphs(home: &Path, name: &str) -> std::path::PathBuf {
    let dir = home.join(format!("{name}-no-onnx"));
    copy_dir(&fixture_model(name), &dir).unwrap();
    std::fs::remove_dir_all(dir.join("onnx")).ok();
    dir
}

/// The sources of the ONNX graphs an answer's `files` list.
fn graph_sources(answer: &serde_json::Value) -> Vec<String> {
    answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["file"].as_str().unwrap().starts_with("onnx/"))
        .map(|f| f["source"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_processes_asking_for_the_same_first_export_make_one() {
    let test = "two_processes_asking_for_the_same_first_export_make_one";
    let home = tempfile::tempdir().unwrap();
    let model = without_graphs(home.path(), "gpt2");
    let r = reference("gpt2");
    let prompt = r["inputs"]["prompt"].as_str().unwrap();
    let mut children = Vec::new();
    for _ in 0..2 {
        let Some(mut cmd) = ort_cli(home.path(), test, false) else {
            return;
        };
        cmd.args(["generate", "--json", "--greedy", "--max-new-tokens", "12"])
            .args(["--backend", "ort", "--model"])
            .arg(&model)
            .arg(prompt)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push(cmd.spawn().unwrap());
    }
    let mut sources = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let answer = json_ok(&out);
        assert_eq!(answer["backend"], "ort");
        assert_eq!(
            id_list(&answer["token_ids"]),
            id_list(&r["prompt"]["token_ids"])
        );
        sources.extend(graph_sources(&answer));
    }
    sources.sort();
    // One exported, the other waited on the lock and read the cache.
    assert_eq!(sources, ["cache", "export"]);
    let listed = cache(cli(home.path()), &["ls"]);
    let exports: Vec<&serde_json::Value> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == "onnx-export")
        .collect();
    assert_eq!(exports.len(), 1, "{listed}");
    assert_eq!(listed["stats"]["export"]["hits"], 1, "{listed}");
    // status lists it with what it was made from.
    let status = json_of(cli(home.path()).args(["status", "--json"]));
    let export = &status["onnx_export"];
    assert_eq!(export["enabled"], true, "{export}");
    let cached = export["cached"].as_array().unwrap();
    assert_eq!(cached.len(), 1, "{export}");
    let provenance = &cached[0]["provenance"];
    assert_eq!(provenance["model_type"], "gpt2", "{export}");
    assert_eq!(provenance["model"], model.to_str().unwrap(), "{export}");
    assert_eq!(provenance["graphs"], serde_json::json!(["model.onnx"]));
    assert_eq!(exports[0]["revision"], cached[0]["key"]);
    let off = json_of(cli(home.path()).args(["status", "--json", "--no-export"]));
    assert_eq!(off["onnx_export"]["enabled"], false);
}

#[test]
fn no_export_runs_only_shipped_graphs() {
    let test = "no_export_runs_only_shipped_graphs";
    let home = tempfile::tempdir().unwrap();
    let model = without_graphs(home.path(), "bert");
    let Some(cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    let line = failure_of(
        cmd,
        "embed",
        &model,
        &["--backend", "ort", "--no-export", "hi"],
    );
    assert!(line.contains("no ONNX graph"), "{line}");
    let mut cmd = ort_cli(home.path(), test, false).unwrap();
    cmd.env("IPFS_ACCELERATE_NO_EXPORT", "1");
    let line = failure_of(cmd, "embed", &model, &["--backend", "ort", "hi"]);
    assert!(line.contains("no ONNX graph"), "{line}");
    // auto runs candle instead, and says so.
    let cmd = ort_cli(home.path(), test, false).unwrap();
    let answer = embed(cmd, &model, &["hi"], &["--no-export"]);
    assert_eq!(answer["backend"], "cpu");
    assert!(graph_sources(&answer).is_empty());
    // A skill of several graphs names the ones missing.
    let cmd = ort_cli(home.path(), test, false).unwrap();
    let clap = fixture_model("clap");
    let audio = clap.join("input.wav");
    let audio = audio.to_str().unwrap();
    let line = failure_of(
        cmd,
        "similarity",
        &clap,
        &["--backend", "ort", "--no-export", "--audio", audio, "a dog"],
    );
    assert!(
        line.contains("no ONNX graphs (onnx/text_model.onnx, onnx/audio_model.onnx)"),
        "{line}"
    );
}

#[test]
fn minilm_from_pypi_runs_on_onnx_runtime_under_auto_with_no_manual_export() {
    let test = "minilm_from_pypi_runs_on_onnx_runtime_under_auto_with_no_manual_export";
    let Some(minilm) = minilm_or_skip(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let texts = [
        "A man is eating food.",
        "A man is riding a horse.",
        "The new movie is awesome.",
    ];
    let cpu = embed(cli(home.path()), &minilm, &texts, &["--backend", "cpu"]);
    let Some(cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    let answer = embed(cmd, &minilm, &texts, &[]);
    assert!(
        answer["backend"] == "ort" || answer["backend"] == "openvino",
        "{}",
        answer["backend"]
    );
    assert_eq!(graph_sources(&answer), ["export"]);
    assert_cosines(
        "minilm auto",
        &embeddings(&answer),
        &embeddings(&cpu),
        0.99999,
    );
    let cmd = ort_cli(home.path(), test, false).unwrap();
    let again = embed(cmd, &minilm, &texts, &[]);
    assert_eq!(graph_sources(&again), ["cache"]);
    assert_eq!(embeddings(&again), embeddings(&answer));
}

#[test]
fn a_merged_decoder_alone_is_split_and_reproduces_the_references() {
    let test = "a_merged_decoder_alone_is_split_and_reproduces_the_references";
    for backend in BACKENDS {
        let home = tempfile::tempdir().unwrap();
        for (name, check) in [("t5", Check::Text2Text), ("whisper", Check::Whisper)] {
            // optimum's layout with only the merged decoder beside the encoder.
            let model = home.path().join(format!("{name}-merged"));
            copy_dir(&fixture_model(name), &model).unwrap();
            for file in ["decoder_model.onnx", "decoder_with_past_model.onnx"] {
                std::fs::remove_file(model.join("onnx").join(file)).unwrap();
            }
            let r = reference(name);
            for source in ["export", "cache"] {
                let Some(mut cmd) = ort_cli(home.path(), test, backend == "openvino") else {
                    return;
                };
                let common = ["--json", "--return-logits", "--max-new-tokens", "12"];
                let answer = if check == Check::Whisper {
                    let wav = fixture_model(name).join("input.wav");
                    json_of(
                        cmd.arg("transcribe")
                            .args(common)
                            .args(["--backend", backend, "--no-export", "--model"])
                            .arg(&model)
                            .arg(wav),
                    )
                } else {
                    let text = r["inputs"]["texts"][0].as_str().unwrap();
                    json_of(
                        cmd.arg("text2text")
                            .args(common)
                            .args(["--greedy", "--backend", backend, "--no-export", "--model"])
                            .arg(&model)
                            .arg(text),
                    )
                };
                let key = format!("{name} on {backend} ({source})");
                assert_eq!(answer["backend"], backend, "{key}");
                // The encoder is the model's own; the decoders were split.
                let files = answer["files"].as_array().unwrap();
                let source_of = |file: &str| {
                    files
                        .iter()
                        .find(|f| f["file"] == file)
                        .map(|f| f["source"].as_str().unwrap().to_owned())
                };
                assert_eq!(
                    source_of("onnx/encoder_model.onnx").as_deref(),
                    Some("local_folder")
                );
                assert_eq!(
                    source_of("onnx/decoder_model.onnx").as_deref(),
                    Some(source)
                );
                assert_eq!(
                    source_of("onnx/decoder_with_past_model.onnx").as_deref(),
                    Some(source)
                );
                let (exact, max_abs) = parity(check, &answer, &r, name);
                assert!(exact && max_abs <= 1e-4, "{key}: {exact} {max_abs:e}");
            }
        }
    }
}

#[test]
fn a_refused_export_is_the_error_by_name_and_candle_under_auto() {
    let test = "a_refused_export_is_the_error_by_name_and_candle_under_auto";
    let home = tempfile::tempdir().unwrap();
    // Dynamic RoPE: the exporter refuses it (its frequencies change with
    // the sequence length).
    let model = fixtures_dir().join("models/variants/llama_dynamic");
    let r = Fixture::at(model.clone());
    let prompt = r["prompt"].as_str().unwrap();
    let Some(cmd) = ort_cli(home.path(), test, false) else {
        return;
    };
    let line = failure_of(cmd, "generate", &model, &["--backend", "ort", prompt]);
    assert!(
        line.contains("exporting one failed") && line.contains("'dynamic'"),
        "{line}"
    );
    // auto: candle answers, and the failure is remembered, not repeated.
    for _ in 0..2 {
        let cmd = ort_cli(home.path(), test, false).unwrap();
        let answer = greedy(cmd, "generate", &model, prompt, 4, &[]);
        assert_eq!(answer["backend"], "cpu");
        assert!(graph_sources(&answer).is_empty());
    }
    let failures = home.path().join("cache/export-failures");
    assert_eq!(std::fs::read_dir(&failures).unwrap().count(), 1);
    let listed = cache(cli(home.path()), &["ls"]);
    assert_eq!(listed["stats"]["export"]["hits"], 0, "{listed}");

    // Weights whose header declares more float32 than the export can hold
    // in memory (2.4 TB here) are refused from the header, before any tensor
    // is read.
    let huge = without_graphs(home.path(), "gpt2");
    let header = br#"{"transformer.wte.weight":{"dtype":"F32","shape":[600000000000],"data_offsets":[0,2400000000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(huge.join("model.safetensors"), bytes).unwrap();
    let cmd = ort_cli(home.path(), test, false).unwrap();
    let line = failure_of(cmd, "generate", &huge, &["--backend", "ort", "hello"]);
    assert!(line.contains("twice that in memory"), "{line}");
}
