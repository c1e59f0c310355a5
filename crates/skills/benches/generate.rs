//! SmolLM2-135M-Instruct Q4_1 (GGUF) on candle CPU: prompt processing and
//! decode speed, measured as whole generations so the numbers include
//! everything a caller pays (tokenizer excluded: ids are prepared once).
//!
//! - `prefill_128`: a 128-token prompt, one new token;
//! - `decode_1` / `decode_64`: a short chat prompt, 1 and 64 new tokens;
//!   decode tokens/s = 63 / (t(64) - t(1)), so the prompt cancels out.
//!
//! Each runs twice: `q4_1_*` on the quantized weights (the default, as
//! llama.cpp computes) and `f32_*` on the same file dequantized to f32
//! (`--dequantize`), the reference of the ratios. After the runs it writes
//! `target/criterion/generate_smollm2/run.json` (token counts and peak
//! resident memory, read after the quantized runs and at the end) for
//! `cargo xtask bench generate` to summarise.
//!
//! Needs `IPFS_ACCELERATE_SMOLLM2_GGUF` (`cargo xtask bench generate` sets it).

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use criterion::{criterion_group, criterion_main, Criterion};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::Loader;
use ipfs_accelerate_skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate_skills::{GenerateOptions, TextGenerator};
use std::path::PathBuf;
use std::time::Duration;

const PREFILL_TOKENS: usize = 128;
const DECODE_TOKENS: usize = 64;

/// `VmHWM` of this process in bytes (Linux), if readable.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn greedy(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        ..GenerateOptions::default()
    }
}

/// The prompts every variant runs: a 128-token text and a short chat prompt.
struct Prompts {
    long: Vec<u32>,
    chat: Vec<u32>,
}

fn prompts(generator: &TextGenerator) -> Prompts {
    let tokenizer = generator.tokenizer();
    let story = "The old lighthouse keeper walked along the rocky shore every evening, \
                 counting the ships that passed and writing their names in a worn notebook. ";
    let long: Vec<u32> = tokenizer
        .encode(story.repeat(8), false)
        .unwrap()
        .get_ids()
        .iter()
        .copied()
        .take(PREFILL_TOKENS)
        .collect();
    assert_eq!(long.len(), PREFILL_TOKENS);
    let chat = generator
        .chat_prompt("Write a short story about a lighthouse keeper.")
        .unwrap();
    let chat = tokenizer.encode(chat, false).unwrap().get_ids().to_vec();
    // Greedy is deterministic: the decode run's length is fixed; it must not
    // stop early, or the rate would be computed over fewer tokens.
    let decoded = generator
        .generate_from_ids(&chat, &greedy(DECODE_TOKENS), &mut |_| {})
        .unwrap();
    assert_eq!(decoded.token_ids.len(), DECODE_TOKENS, "stopped early");
    Prompts { long, chat }
}

/// prefill_128, decode_1 and decode_64 of one generator, named `{name}/...`.
fn run_variant(c: &mut Criterion, name: &str, generator: &TextGenerator, prompts: &Prompts) {
    let mut group = c.benchmark_group("generate_smollm2");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(20));
    let cases = [
        ("prefill_128", &prompts.long, 1),
        ("decode_1", &prompts.chat, 1),
        ("decode_64", &prompts.chat, DECODE_TOKENS),
    ];
    for (case, ids, new_tokens) in cases {
        group.bench_function(format!("{name}_{case}"), |b| {
            b.iter(|| {
                generator
                    .generate_from_ids(ids, &greedy(new_tokens), &mut |_| {})
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let Some(file) = std::env::var_os("IPFS_ACCELERATE_SMOLLM2_GGUF") else {
        println!("SKIPPED generate bench: IPFS_ACCELERATE_SMOLLM2_GGUF is not set (use `cargo xtask bench generate`)");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let model = gguf::locate(file.to_str().unwrap(), None).unwrap().unwrap();
    let load =
        |compute| TextGenerator::load_gguf(&loader, &model, BackendKind::Cpu, compute).unwrap();

    // Quantized first, so the peak memory read after it is its own.
    let quantized = load(GgufCompute::Quantized);
    let prompts = prompts(&quantized);
    run_variant(c, "q4_1", &quantized, &prompts);
    let quantized_peak = peak_rss_bytes();
    drop(quantized);
    // The same file dequantized to f32 (`--dequantize`): the reference.
    let dequantized = load(GgufCompute::DequantizedF32);
    run_variant(c, "f32", &dequantized, &prompts);

    let run = serde_json::json!({
        "prefill_tokens": PREFILL_TOKENS,
        "decode_tokens": DECODE_TOKENS,
        "chat_prompt_tokens": prompts.chat.len(),
        "quantized_peak_rss_bytes": quantized_peak,
        "process_peak_rss_bytes": peak_rss_bytes(),
        "gguf_bytes": std::fs::metadata(&file).map(|m| m.len()).ok(),
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
    });
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion/generate_smollm2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
