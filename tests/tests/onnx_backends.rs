//! The ONNX Runtime backends (CPU and OpenVINO execution providers) against
//! the fixtures' references, through the library: the embedding skill on
//! BERT's `onnx/model.onnx`, greedy generation on GPT-2's and LLaMA's
//! (KV cache fed between steps).

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::{BackendKind, EmbedOptions, GenerateOptions, TextEmbedder, TextGenerator};
use ipfs_accelerate_tests::{
    as_strs, assert_close, assert_cosines, assert_rows_close, bert_reference, fixture_ref, id_list,
    loader, ort_missing_skip, Fixture,
};

const BACKENDS: [BackendKind; 2] = [BackendKind::Ort, BackendKind::OpenVino];

/// True (after reporting the skip) when `backend` cannot run here.
fn missing(test: &str, backend: BackendKind) -> bool {
    ort_missing_skip(test, backend == BackendKind::OpenVino)
}

#[test]
fn bert_embeddings_match_reference_on_onnx_backends() {
    let (texts, expected) = bert_reference();
    let texts = as_strs(&texts);
    for backend in BACKENDS {
        if missing("bert_embeddings_match_reference_on_onnx_backends", backend) {
            continue;
        }
        let home = tempfile::tempdir().unwrap();
        let embedder =
            TextEmbedder::load(&loader(home.path()), &fixture_ref("bert"), backend).unwrap();
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
            let key = format!("{backend} {options:?}");
            assert_cosines(&key, &got, &expected, 0.9999);
            assert_rows_close(&key, &got, &expected, 1e-4);
        }
    }
}

#[test]
fn greedy_generation_matches_reference_on_onnx_backends() {
    for name in ["gpt2", "llama"] {
        let r = Fixture::new(name);
        let expected = id_list(&r["prompt"]["token_ids"]);
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
                TextGenerator::load(&loader(home.path()), &fixture_ref(name), backend).unwrap();
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
                let logits = r.array_at(&["onnx", "prompt", "last_logits"]);
                let key = format!("{name} on {backend}: last logits");
                assert_close(&key, out.last_logits.as_ref().unwrap(), &logits.data, 1e-4);
            }
        }
    }
}

/// CLAP graphs shipped with the model in transformers.js's layout, whose
/// audio graph has no `logit_scale` output: the scale comes from the
/// weights, and the answer still reproduces transformers' logits. The
/// graphs are our export of the fixture, written by `export onnx`, with
/// that output removed.
#[test]
fn shipped_clap_graphs_without_a_logit_scale_take_it_from_the_weights() {
    use ipfs_accelerate::export::{export, model_io, ExportOptions};
    use ipfs_accelerate::skills::media::read_wav;
    use ipfs_accelerate::skills::{Media, SimilarityModel, SimilarityOptions};
    let test = "shipped_clap_graphs_without_a_logit_scale_take_it_from_the_weights";
    if missing(test, BackendKind::Ort) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let model = ipfs_accelerate_tests::fixture_copy("clap", home.path());
    let loader = loader(home.path());
    let onnx = model.join("onnx");
    let model = ipfs_accelerate_tests::model_ref(&model);
    export(&loader, &model, &onnx, &ExportOptions::default()).unwrap();
    let audio_graph = onnx.join("audio_model.onnx");
    let mut graph = model_io::read(&audio_graph).unwrap();
    graph
        .graph
        .as_mut()
        .unwrap()
        .output
        .retain(|o| o.name != "logit_scale");
    model_io::write(&graph, &audio_graph).unwrap();

    let r = Fixture::new("clap");
    let scorer = SimilarityModel::load(&loader, &model, BackendKind::Ort).unwrap();
    assert_eq!(scorer.backend(), BackendKind::Ort);
    let wav = read_wav(&ipfs_accelerate_tests::fixture_model("clap").join("input.wav")).unwrap();
    let texts: Vec<String> = serde_json::from_value(r["inputs"]["texts"].clone()).unwrap();
    let got = scorer
        .score(Media::Audio(&wav), &texts, SimilarityOptions::default())
        .unwrap();
    let want: Vec<f32> = ipfs_accelerate_tests::f32_list(&r["outputs"]["logits_per_audio"]["data"]);
    assert_close(test, &got.logits, &want[..texts.len()], 1e-4);
}
