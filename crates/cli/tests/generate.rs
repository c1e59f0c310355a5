//! `generate` reproduces transformers' greedy generation for GPT-2, OPT and
//! LLaMA
//! (the shared fixtures and our config-variant fixtures), samples
//! reproducibly, honours stop strings, streams, and refuses bad input.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn shared_fixture(name: &str) {
    let home = tempfile::tempdir().unwrap();
    shared_fixture_matches_on_cpu(cli(home.path()), name, name, &[]);
}

#[test]
fn gpt2_fixture_matches_reference() {
    shared_fixture("gpt2");
}

#[test]
fn opt_fixture_matches_reference() {
    shared_fixture("opt");
}

#[test]
fn llama_fixture_matches_reference() {
    // Grouped-query attention, untied head, plain RoPE.
    shared_fixture("llama");
}

fn variants(prefix: &str) {
    variants_on(prefix, &["cpu"]);
}

/// The variants `prefix*` on each of `backends` (the ONNX backends export
/// each variant on first use).
fn variants_on(prefix: &str, backends: &[&str]) {
    let home = tempfile::tempdir().unwrap();
    for backend in backends {
        for variant in Fixture::variants(prefix) {
            let ids = id_list(&variant["token_ids"]);
            let prompt = variant["prompt"].as_str().unwrap();
            let answer = greedy(
                cli_on(home.path(), backend),
                "generate",
                &variant.dir,
                prompt,
                ids.len(),
                &["--return-logits", "--backend", backend],
            );
            let name = format!("{} on {backend}", variant.dir.display());
            assert_eq!(answer["backend"], *backend, "{name}");
            check_answer(
                &name,
                &answer,
                &ids,
                variant["text"].as_str().unwrap(),
                &f32_list(&variant["last_logits"]),
            );
        }
    }
}

#[test]
fn gpt2_config_variants_match_transformers() {
    // Padded vocabulary (ids past the tokenizer are generated and decode to
    // nothing), exact GELU, n_inner, per-layer scaling, unprefixed weights.
    let backends = parity_backends("gpt2_config_variants_match_transformers");
    variants_on("gpt2_", &backends);
}

#[test]
fn opt_config_variants_match_transformers() {
    // opt-350m's layout (post-LayerNorm, word_embed_proj_dim < hidden_size,
    // unprefixed weights) and projections without bias with an untied head.
    let backends = parity_backends("opt_config_variants_match_transformers");
    variants_on("opt_", &backends);
}

#[test]
fn llama_config_variants_match_transformers() {
    // Every rope_scaling type (linear, dynamic past the context, yarn,
    // longrope, llama3), tied head, biases, head_dim, padded vocabulary.
    variants("llama_");
}

fn gpt2_prompt() -> String {
    reference("gpt2")["inputs"]["prompt"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn sample(home: &Path, extra: &[&str]) -> Vec<u32> {
    let answer = json_of(
        cli(home)
            .args(["generate", "--json", "--max-new-tokens", "12", "--model"])
            .arg(fixture_model("gpt2"))
            .args(extra)
            .arg(gpt2_prompt()),
    );
    id_list(&answer["token_ids"])
}

#[test]
fn sampling_is_reproducible_by_seed() {
    let home = tempfile::tempdir().unwrap();
    let args = ["--temperature", "1.5", "--top-p", "0.95", "--seed"];
    let a = sample(home.path(), &[&args[..], &["11"]].concat());
    let b = sample(home.path(), &[&args[..], &["11"]].concat());
    let c = sample(home.path(), &[&args[..], &["12"]].concat());
    assert_eq!(a, b, "same seed, same tokens");
    assert_ne!(a, c, "another seed, other tokens");
    // top-k 1 leaves one candidate: sampling then equals greedy.
    let greedy = id_list(&reference("gpt2")["prompt"]["token_ids"]);
    assert_eq!(
        sample(home.path(), &["--top-k", "1", "--seed", "5"]),
        greedy
    );
}

#[test]
fn stop_strings_cut_the_text() {
    let home = tempfile::tempdir().unwrap();
    // The greedy text is "ong\u{fffd}ARgieciec thP\u{fffd} light".
    let stop = ["--stop", " th"];
    let gpt2 = fixture_model("gpt2");
    let answer = greedy(
        cli(home.path()),
        "generate",
        &gpt2,
        &gpt2_prompt(),
        12,
        &stop,
    );
    assert_eq!(answer["text"], "ong\u{fffd}ARgieciec");
    assert_eq!(answer["stop_reason"], "stop_string");
    let ids = id_list(&answer["token_ids"]);
    let full = id_list(&reference("gpt2")["prompt"]["token_ids"]);
    assert!(ids.len() < full.len() && full.starts_with(&ids), "{ids:?}");
}

#[test]
fn streams_the_text_without_json() {
    let home = tempfile::tempdir().unwrap();
    let opt = Fixture::new("opt");
    let prompt = opt["inputs"]["prompt"].as_str().unwrap();
    let stdout = streamed(cli(home.path()), "generate", &opt.dir, prompt, 12);
    assert_eq!(
        stdout,
        format!("{}\n", opt["prompt"]["text"].as_str().unwrap())
    );
}

#[test]
fn bad_input_gets_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let gpt2 = fixture_model("gpt2");
    assert_refuses_empty_prompt_and_no_tokens(|| cli(home.path()), "generate", &gpt2);
    let generate =
        |model: &Path, extra: &[&str]| failure_of(cli(home.path()), "generate", model, extra);
    // n_positions is 64: a prompt of ~200 tokens cannot fit.
    let long = "a b c d ".repeat(50);
    let err = generate(&gpt2, &["--max-new-tokens", "4", &long]);
    assert!(
        err.contains("positions") && err.contains("shorten"),
        "{err}"
    );
    let err = generate(&fixture_model("t5"), &["--max-new-tokens", "4", "hello"]);
    assert!(err.contains("not a causal language model"), "{err}");
    let err = generate(&fixture_model("bert"), &["--max-new-tokens", "4", "hello"]);
    assert!(err.contains("not a causal language model"), "{err}");
    let unknown = fixture_copy("gpt2", home.path());
    let config = unknown.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"gpt2\"", "\"mamba\"")
            .replace("GPT2LMHeadModel", "MambaForCausalLM"),
    )
    .unwrap();
    let err = generate(&unknown, &["--max-new-tokens", "4", "hello"]);
    assert!(
        err.contains("unsupported architecture") && err.contains("gpt2, opt, llama"),
        "{err}"
    );
    let err = generate(
        &gpt2,
        &["--max-new-tokens", "4", "--temperature", "0", "hello"],
    );
    assert!(err.contains("temperature"), "{err}");
    let err = generate(&gpt2, &["--max-new-tokens", "4", "--dequantize", "hello"]);
    assert!(err.contains("GGUF models only"), "{err}");
}
