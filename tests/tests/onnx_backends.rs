//! The ONNX Runtime backends (CPU and OpenVINO execution providers) against
//! the fixtures' references, through the library: the embedding skill on
//! BERT's `onnx/model.onnx`, greedy generation on GPT-2's and LLaMA's
//! (KV cache fed between steps).

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::gating::Gate;
use ipfs_accelerate::{
    BackendKind, EmbedOptions, GenerateOptions, Loader, ModelRef, TextEmbedder, TextGenerator,
};
use ipfs_accelerate_tests::{cosine, fixture_model, ort_missing, reference, reference_rows, skip};

const BACKENDS: [BackendKind; 2] = [BackendKind::Ort, BackendKind::OpenVino];

fn loader(home: &std::path::Path) -> Loader {
    Loader::builder()
        .cache_dir(home.join("cache"))
        .hub_cache_dir(home.join("hub"))
        .gate(Gate::decide([("HF_HUB_OFFLINE", "1")]))
        .build()
        .unwrap()
}

fn fixture(name: &str) -> ModelRef {
    ModelRef::parse(fixture_model(name).to_str().unwrap()).unwrap()
}

/// True (after reporting the skip) when `backend` cannot run here.
fn missing(test: &str, backend: BackendKind) -> bool {
    match ort_missing(backend == BackendKind::OpenVino) {
        Some(reason) => {
            skip(test, reason);
            true
        }
        None => false,
    }
}

#[test]
fn bert_embeddings_match_reference_on_onnx_backends() {
    let r = reference("bert");
    let texts: Vec<&str> = r["inputs"]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let expected = reference_rows(&r["outputs"]["embeddings"]);
    for backend in BACKENDS {
        if missing("bert_embeddings_match_reference_on_onnx_backends", backend) {
            continue;
        }
        let home = tempfile::tempdir().unwrap();
        let embedder = TextEmbedder::load(&loader(home.path()), &fixture("bert"), backend).unwrap();
        assert_eq!(embedder.backend(), backend);
        assert!(embedder.files().iter().any(|f| f.file == "onnx/model.onnx"));
        for options in [
            EmbedOptions::default(),
            EmbedOptions {
                batch_size: 1,
                sort_by_length: false,
            },
        ] {
            let got = embedder.embed_with(&texts, options).unwrap();
            assert_eq!(got.len(), expected.len());
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                let c = cosine(g, e);
                assert!(c >= 0.9999, "{backend} {options:?} text {i}: cosine {c}");
                let max_abs = g
                    .iter()
                    .zip(e)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(max_abs <= 1e-4, "{backend} text {i}: max abs {max_abs}");
            }
        }
    }
}

#[test]
fn greedy_generation_matches_reference_on_onnx_backends() {
    for name in ["gpt2", "llama"] {
        let r = reference(name);
        let expected: Vec<u32> = r["prompt"]["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let prompt = r["inputs"]["prompt"].as_str().unwrap();
        let new_tokens = r["generation"]["max_new_tokens"].as_u64().unwrap() as usize;
        for backend in BACKENDS {
            if missing(
                "greedy_generation_matches_reference_on_onnx_backends",
                backend,
            ) {
                continue;
            }
            let home = tempfile::tempdir().unwrap();
            let generator =
                TextGenerator::load(&loader(home.path()), &fixture(name), backend).unwrap();
            assert_eq!(generator.backend(), backend, "{name}");
            let options = GenerateOptions {
                max_new_tokens: new_tokens,
                return_logits: true,
                ..GenerateOptions::default()
            };
            // Twice: the cache is reset between requests.
            for _ in 0..2 {
                let out = generator.generate(prompt, &options, &mut |_| {}).unwrap();
                assert_eq!(out.token_ids, expected, "{name} on {backend}");
                assert_eq!(out.text, r["prompt"]["text"].as_str().unwrap(), "{name}");
                let (_, logits) = ipfs_accelerate_tests::reference_array(
                    name,
                    &r["onnx"]["prompt"]["last_logits"],
                );
                let diff = out
                    .last_logits
                    .as_ref()
                    .unwrap()
                    .iter()
                    .zip(&logits)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    diff <= 1e-4,
                    "{name} on {backend}: last logits differ by {diff}"
                );
            }
        }
    }
}
