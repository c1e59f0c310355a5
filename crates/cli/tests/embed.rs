//! `embed` reproduces transformers' sentence embeddings.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

#[test]
fn bert_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let (texts, expected) = bert_reference();
    let model = fixture_model("bert");
    let out = run(cli(home.path())
        .args(["embed", "--json", "--model"])
        .arg(&model)
        .args(&texts));
    let answer = json_ok(&out);
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], model.to_str().unwrap());
    assert_eq!(answer["dim"], 32);
    let got = embeddings(&answer);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let c = cosine(g, e);
        assert!(c >= 0.99999, "text {i}: cosine {c}");
        let max_abs = g
            .iter()
            .zip(e)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_abs <= 1e-4, "text {i}: max abs diff {max_abs}");
    }
}

#[test]
fn order_and_batching_do_not_change_results() {
    let home = tempfile::tempdir().unwrap();
    let (texts, expected) = bert_reference();
    // Reversed input, batch size 1 and 2: every answer still lines up.
    let reversed: Vec<&String> = texts.iter().rev().collect();
    for batch in ["1", "2"] {
        let out = run(cli(home.path())
            .args(["embed", "--json", "--batch-size", batch, "--model"])
            .arg(fixture_model("bert"))
            .args(&reversed));
        let got = embeddings(&json_ok(&out));
        for (g, e) in got.iter().zip(expected.iter().rev()) {
            assert!(cosine(g, e) >= 0.99999);
        }
    }
}

#[test]
fn real_minilm_known_values() {
    let Some(dir) = minilm_dir() else {
        skip(
            "real_minilm_known_values",
            "all-MiniLM-L6-v2 not fetched (run `cargo xtask fetch-models`; set IPFS_ACCELERATE_MINILM_DIR)",
        );
        return;
    };
    let home = tempfile::tempdir().unwrap();
    // Through the cache by id, as users load it.
    let id = "sentence-transformers/all-MiniLM-L6-v2";
    json_ok(&run(cli(home.path())
        .args(["cache", "import", "--json", "--as", id])
        .arg(&dir)));
    let out = run(cli(home.path())
        .env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1")
        .args(["embed", "--json", "--model", id, "hello world"])
        .arg("The quick brown fox jumps over the lazy dog."));
    let answer = json_ok(&out);
    assert_eq!(answer["dim"], 384);
    let got = embeddings(&answer);
    let cases: [&[f32]; 2] = [
        &[-0.034477, 0.031023, 0.006735, 0.026109],
        &[0.04393355, 0.05893441, 0.04817837],
    ];
    for (g, want) in got.iter().zip(cases) {
        for (i, w) in want.iter().enumerate() {
            assert!((g[i] - w).abs() <= 1e-5, "component {i}: {} vs {w}", g[i]);
        }
    }
    for file in answer["files"].as_array().unwrap() {
        assert_eq!(file["source"], "cache", "{file}");
    }
}
