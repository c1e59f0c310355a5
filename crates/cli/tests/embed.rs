//! `embed` reproduces transformers' sentence embeddings.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

#[test]
fn bert_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let (texts, expected) = bert_reference();
    let model = fixture_model("bert");
    let answer = embed(cli(home.path()), &model, &texts, &[]);
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], model.to_str().unwrap());
    assert_eq!(answer["dim"], 32);
    let got = embeddings(&answer);
    assert_cosines("bert", &got, &expected, 0.99999);
    assert_rows_close("bert", &got, &expected, 1e-4);
}

#[test]
fn order_and_batching_do_not_change_results() {
    let home = tempfile::tempdir().unwrap();
    let (texts, expected) = bert_reference();
    // Reversed input, batch size 1 and 2: every answer still lines up.
    let reversed: Vec<&String> = texts.iter().rev().collect();
    let expected: Vec<Vec<f32>> = expected.into_iter().rev().collect();
    for batch in ["1", "2"] {
        let extra = ["--batch-size", batch];
        let answer = embed(cli(home.path()), fixture_model("bert"), &reversed, &extra);
        assert_cosines(
            &format!("batch {batch}"),
            &embeddings(&answer),
            &expected,
            0.99999,
        );
    }
}

#[test]
fn real_minilm_known_values() {
    let Some(dir) = minilm_or_skip("real_minilm_known_values") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    // Through the cache by id, as users load it.
    let id = "sentence-transformers/all-MiniLM-L6-v2";
    cache_import(cli(home.path()), id, &dir);
    let mut cmd = cli(home.path());
    cmd.env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1");
    let texts = [
        "hello world",
        "The quick brown fox jumps over the lazy dog.",
    ];
    let answer = embed(cmd, id, &texts, &[]);
    assert_eq!(answer["dim"], 384);
    let got = embeddings(&answer);
    let cases: [&[f32]; 2] = [
        &[-0.034477, 0.031023, 0.006735, 0.026109],
        &[0.04393355, 0.05893441, 0.04817837],
    ];
    for (i, (g, want)) in got.iter().zip(cases).enumerate() {
        assert_close(&format!("text {i}"), &g[..want.len()], want, 1e-5);
    }
    for file in answer["files"].as_array().unwrap() {
        assert_eq!(file["source"], "cache", "{file}");
    }
}
