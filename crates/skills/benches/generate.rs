//! SmolLM2-135M-Instruct Q4_1 (GGUF) on candle CPU: prompt processing and
//! decode speed, measured as whole generations so the numbers include
//! everything a caller pays (tokenizer excluded: ids are prepared once).
//!
//! - `prefill_128`: a 128-token prompt, one new token;
//! - `decode_1` / `decode_64`: a short chat prompt, 1 and 64 new tokens;
//!   decode tokens/s = 63 / (t(64) - t(1)), so the prompt cancels out.
//!
//! After the runs it writes `target/criterion/generate_smollm2/run.json`
//! (token counts and the process's peak resident memory) for
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

fn bench(c: &mut Criterion) {
    let Some(file) = std::env::var_os("IPFS_ACCELERATE_SMOLLM2_GGUF") else {
        println!("SKIPPED generate bench: IPFS_ACCELERATE_SMOLLM2_GGUF is not set (use `cargo xtask bench generate`)");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let model = gguf::locate(file.to_str().unwrap(), None).unwrap().unwrap();
    let generator =
        TextGenerator::load_gguf(&loader, &model, BackendKind::Cpu, GgufCompute::Quantized)
            .unwrap();
    let tokenizer = generator.tokenizer();

    let story = "The old lighthouse keeper walked along the rocky shore every evening, \
                 counting the ships that passed and writing their names in a worn notebook. ";
    let long_ids: Vec<u32> = tokenizer
        .encode(story.repeat(8), false)
        .unwrap()
        .get_ids()
        .iter()
        .copied()
        .take(PREFILL_TOKENS)
        .collect();
    assert_eq!(long_ids.len(), PREFILL_TOKENS);
    let chat = generator
        .chat_prompt("Write a short story about a lighthouse keeper.")
        .unwrap();
    let chat_ids = tokenizer.encode(chat, false).unwrap().get_ids().to_vec();
    // Greedy is deterministic: the decode run's length is fixed; it must not
    // stop early, or the rate would be computed over fewer tokens.
    let decoded = generator
        .generate_from_ids(&chat_ids, &greedy(DECODE_TOKENS), &mut |_| {})
        .unwrap();
    assert_eq!(decoded.token_ids.len(), DECODE_TOKENS, "stopped early");

    let mut group = c.benchmark_group("generate_smollm2");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("prefill_128", |b| {
        b.iter(|| {
            generator
                .generate_from_ids(&long_ids, &greedy(1), &mut |_| {})
                .unwrap()
        })
    });
    group.bench_function("decode_1", |b| {
        b.iter(|| {
            generator
                .generate_from_ids(&chat_ids, &greedy(1), &mut |_| {})
                .unwrap()
        })
    });
    group.bench_function("decode_64", |b| {
        b.iter(|| {
            generator
                .generate_from_ids(&chat_ids, &greedy(DECODE_TOKENS), &mut |_| {})
                .unwrap()
        })
    });
    group.finish();

    let run = serde_json::json!({
        "prefill_tokens": PREFILL_TOKENS,
        "decode_tokens": DECODE_TOKENS,
        "chat_prompt_tokens": chat_ids.len(),
        "peak_rss_bytes": peak_rss_bytes(),
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
