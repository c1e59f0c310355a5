//! The embedding skill against transformers' reference, through the library.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::gating::Gate;
use ipfs_accelerate::{BackendKind, EmbedOptions, Loader, ModelRef, TextEmbedder};
use ipfs_accelerate_tests::{cosine, fixture_model, reference, reference_rows};

#[test]
fn bert_fixture_sorted_and_unsorted_agree_with_reference() {
    let home = tempfile::tempdir().unwrap();
    let loader = Loader::builder()
        .cache_dir(home.path().join("cache"))
        .hub_cache_dir(home.path().join("hub"))
        .gate(Gate::decide([("HF_HUB_OFFLINE", "1")]))
        .build()
        .unwrap();
    let model = ModelRef::parse(fixture_model("bert").to_str().unwrap()).unwrap();
    let embedder = TextEmbedder::load(&loader, &model, BackendKind::Cpu).unwrap();
    assert_eq!(embedder.backend(), BackendKind::Cpu);
    assert_eq!(embedder.max_seq_length(), 64);
    let r = reference("bert");
    let texts: Vec<&str> = r["inputs"]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let expected = reference_rows(&r["outputs"]["embeddings"]);
    for options in [
        EmbedOptions {
            batch_size: 32,
            sort_by_length: true,
        },
        EmbedOptions {
            batch_size: 2,
            sort_by_length: false,
        },
        EmbedOptions {
            batch_size: 1,
            sort_by_length: true,
        },
    ] {
        let got = embedder.embed_with(&texts, options).unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert!(cosine(g, e) >= 0.99999, "{options:?}");
            for (a, b) in g.iter().zip(e) {
                assert!((a - b).abs() <= 1e-5, "{options:?}: {a} vs {b}");
            }
        }
    }
    assert!(embedder.embed(&[]).is_err());
}
