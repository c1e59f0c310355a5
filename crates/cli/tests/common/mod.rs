//! The binary under test, handed to the shared harness
//! (`ipfs-accelerate-tests`): only this crate's tests know its path.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub use ipfs_accelerate_tests::*;

/// The `ipfs-accelerate` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ipfs-accelerate");

/// The binary under test with a clean environment: only PATH, HOME pointing
/// at a temp home, our cache at `cache`, an empty Hub cache, Hub offline
/// (see [`runner::command`]).
pub fn cli(home: &Path) -> Command {
    runner::command(Path::new(BIN), home)
}

/// The backends the reference tests run on here: `cpu`, then `ort` and
/// `openvino` when their libraries are installed and serve this processor
/// (otherwise the skip of `test` is reported). On the ONNX backends a
/// fixture without graphs is exported on first use.
pub fn parity_backends(test: &str) -> Vec<&'static str> {
    let mut backends = vec!["cpu"];
    for (name, openvino) in [("ort", false), ("openvino", true)] {
        if !ort_missing_skip(test, openvino) {
            backends.push(name);
        }
    }
    backends
}

/// [`cli`] able to run `backend`: with the ONNX Runtime library (and the
/// OpenVINO plugin) for the ONNX backends.
pub fn cli_on(home: &Path, backend: &str) -> Command {
    let mut cmd = cli(home);
    if backend == "ort" || backend == "openvino" {
        if let Some(dylib) = ort_dylib() {
            cmd.env("ORT_DYLIB_PATH", dylib);
        }
    }
    if backend == "openvino" {
        if let Some(plugin) = openvino_ep() {
            cmd.env("IPFS_ACCELERATE_OPENVINO_EP", plugin);
        }
    }
    cmd
}

/// Checks one `generate --return-logits` answer against a fixture's
/// reference: the last logits within 1e-4, the token ids, the text.
pub fn check_answer(
    name: &str,
    answer: &serde_json::Value,
    ids: &[u32],
    text: &str,
    logits: &[f32],
) {
    let got = f32_list(&answer["last_logits"]);
    assert_close(&format!("{name}: last_logits"), &got, logits, 1e-4);
    assert_eq!(id_list(&answer["token_ids"]), ids, "{name}: token_ids");
    assert_eq!(answer["text"], text, "{name}: text");
}

/// `generate --greedy --return-logits` (and `extra`) through `cmd` on
/// shared fixture `fixture`'s prompt: [`check_answer`] against
/// transformers' reference, the prompt's length, and the CPU named as the
/// backend that ran. `name` labels the failures.
pub fn shared_fixture_matches_on_cpu(cmd: Command, fixture: &str, name: &str, extra: &[&str]) {
    let fixture = Fixture::new(fixture);
    let prompt = &fixture["prompt"];
    let new_tokens = fixture["generation"]["max_new_tokens"].as_u64().unwrap() as usize;
    let text = fixture["inputs"]["prompt"].as_str().unwrap();
    let extra = [&["--return-logits"], extra].concat();
    let answer = greedy(cmd, "generate", &fixture.dir, text, new_tokens, &extra);
    check_answer(
        name,
        &answer,
        &id_list(&prompt["token_ids"]),
        prompt["text"].as_str().unwrap(),
        &f32_list(&prompt["last_logits"]["data"]),
    );
    assert_eq!(answer["backend"], "cpu", "{name}");
    assert_eq!(
        answer["prompt_tokens"].as_u64().unwrap() as usize,
        prompt["input_ids"]["data"].as_array().unwrap().len(),
        "{name}: prompt_tokens"
    );
}
