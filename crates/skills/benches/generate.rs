//! One GGUF file on one backend, one process (so its peak memory is its
//! own): prompt-processing and decode tokens/s, and the aggregate tokens/s
//! of 1, 4 and 8 concurrent greedy streams. `cargo xtask bench generate`
//! runs it per file and runs llama.cpp (llama-cpp-python) on the same
//! prompt ids beside it.
//!
//! Read from the environment:
//! - `IPFS_ACCELERATE_BENCH_GGUF`: the file;
//! - `IPFS_ACCELERATE_BENCH_BACKEND`: `llamacpp` (default) or `cpu`;
//! - `IPFS_ACCELERATE_BENCH_STREAMS`: stream counts to measure, e.g. `1,4,8`
//!   (none by default);
//! - `IPFS_ACCELERATE_BENCH_OUT`: where the JSON result goes.
//!
//! - prompt: a 126-token text, one new token (the prompt's forward pass
//!   and one sampling), best of 3;
//! - decode: `64 / (t(65 new tokens) - t(1 new token))` after a short
//!   prompt, so the prompt cancels out; best of 3;
//! - streams: N threads each generating 64 tokens from its own prompt at
//!   once; total generated tokens / wall time, best of 3.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::Loader;
use ipfs_accelerate_skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate_skills::{GenerateOptions, TextGenerator};
use std::time::Instant;

const PROMPT_TOKENS: usize = 126;
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

/// Seconds of one greedy generation of `new` tokens from `ids`, and how
/// many it produced.
fn timed(generator: &TextGenerator, ids: &[u32], new: usize) -> (f64, usize) {
    let start = Instant::now();
    let generation = generator
        .generate_from_ids(ids, &greedy(new), &mut |_| {})
        .unwrap();
    (start.elapsed().as_secs_f64(), generation.token_ids.len())
}

/// Texts the streams continue, one per stream (each its own prompt).
const STORIES: [&str; 8] = [
    "The old lighthouse keeper walked along the rocky shore every evening,",
    "In the middle of the desert there was a small town where",
    "The recipe my grandmother left me starts with a warning:",
    "When the first train arrived in the valley, the farmers",
    "Scientists studying the deep ocean found a creature that",
    "The library had been closed for a hundred years until",
    "Every winter the children of the village built a tower of snow and",
    "The astronaut looked back at the Earth and remembered",
];

fn main() {
    let Some(file) = std::env::var_os("IPFS_ACCELERATE_BENCH_GGUF") else {
        println!("SKIPPED generate bench: IPFS_ACCELERATE_BENCH_GGUF is not set (use `cargo xtask bench generate`)");
        return;
    };
    let backend: BackendKind = std::env::var("IPFS_ACCELERATE_BENCH_BACKEND")
        .unwrap_or_else(|_| "llamacpp".to_owned())
        .parse()
        .unwrap();
    let streams: Vec<usize> = std::env::var("IPFS_ACCELERATE_BENCH_STREAMS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let out = std::env::var_os("IPFS_ACCELERATE_BENCH_OUT").expect("IPFS_ACCELERATE_BENCH_OUT");

    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let model = gguf::locate(file.to_str().unwrap(), None).unwrap().unwrap();
    let generator =
        TextGenerator::load_gguf(&loader, &model, backend, GgufCompute::Quantized).unwrap();
    let tokenizer = generator.tokenizer();
    let encode = |text: &str| tokenizer.encode(text, false).unwrap().get_ids().to_vec();

    let story = "The old lighthouse keeper walked along the rocky shore every evening, \
                 counting the ships that passed and writing their names in a worn notebook. ";
    let long: Vec<u32> = encode(&story.repeat(8))
        .into_iter()
        .take(PROMPT_TOKENS)
        .collect();
    assert_eq!(long.len(), PROMPT_TOKENS);
    let short = encode(STORIES[0]);

    // Warm up (first-touch page faults of the weights), then measure.
    timed(&generator, &long, 1);
    let prompt_s = (0..3)
        .map(|_| timed(&generator, &long, 1).0)
        .fold(f64::INFINITY, f64::min);
    // Best of 3, as the prompt: runs on this machine vary by ±10 %.
    let decode_per_s = (0..3)
        .map(|_| {
            let (one_s, _) = timed(&generator, &short, 1);
            let (many_s, produced) = timed(&generator, &short, DECODE_TOKENS + 1);
            assert_eq!(produced, DECODE_TOKENS + 1, "the decode run stopped early");
            DECODE_TOKENS as f64 / (many_s - one_s)
        })
        .fold(0.0, f64::max);
    let single_peak = peak_rss_bytes();

    let mut aggregate = serde_json::Map::new();
    for &n in &streams {
        let prompts: Vec<Vec<u32>> = STORIES.iter().cycle().take(n).map(|s| encode(s)).collect();
        // Best of 3, as prompt and decode: greedy, so every run generates
        // the same tokens.
        let (total, seconds) = (0..3)
            .map(|_| {
                let start = Instant::now();
                let total: usize = std::thread::scope(|scope| {
                    let runs: Vec<_> = prompts
                        .iter()
                        .map(|ids| {
                            let generator = &generator;
                            scope.spawn(move || timed(generator, ids, DECODE_TOKENS).1)
                        })
                        .collect();
                    runs.into_iter().map(|r| r.join().unwrap()).sum()
                });
                (total, start.elapsed().as_secs_f64())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        aggregate.insert(
            n.to_string(),
            serde_json::json!({
                "tokens": total,
                "seconds": seconds,
                "tokens_per_s": total as f64 / seconds,
                "peak_in_one_step": generator.peak_concurrent_requests(),
            }),
        );
    }

    let result = serde_json::json!({
        "file": file.to_string_lossy(),
        "backend": generator.backend().name(),
        "kernels": kernels(),
        "threads": threads(),
        "prompt_ids": long,
        "decode_prompt_ids": short,
        "stream_prompt_ids": STORIES.iter().map(|s| encode(s)).collect::<Vec<_>>(),
        // What ends a stream here, for the other side to stop on the same.
        "eos_ids": generator.eos_ids(),
        "prompt_tokens": PROMPT_TOKENS,
        "prompt_tokens_per_s": PROMPT_TOKENS as f64 / prompt_s,
        "decode_tokens": DECODE_TOKENS,
        "decode_tokens_per_s": decode_per_s,
        "peak_rss_bytes": single_peak,
        "streams": aggregate,
        "streams_peak_rss_bytes": peak_rss_bytes(),
    });
    std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    println!(
        "{}",
        serde_json::to_string(&result["prompt_tokens_per_s"]).unwrap()
    );
}

/// llama.cpp's threads (`IPFS_ACCELERATE_LLAMA_CPP_THREADS`, else
/// `RAYON_NUM_THREADS`, else every core), for the other side to use.
fn threads() -> usize {
    ["IPFS_ACCELERATE_LLAMA_CPP_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The ggml CPU module llama.cpp loaded, if this build has llama.cpp.
fn kernels() -> Option<String> {
    #[cfg(feature = "llama-cpp")]
    {
        ipfs_accelerate_backends::llama_cpp::cpu_module()
    }
    #[cfg(not(feature = "llama-cpp"))]
    {
        None
    }
}
