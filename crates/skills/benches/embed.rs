//! all-MiniLM-L6-v2 sentence embeddings on candle CPU: latency of one short
//! sentence, and throughput over 256 mixed-length sentences at batch 32 with
//! and without length sorting (the same code, so the ratio is the gain).
//!
//! Needs `IPFS_ACCELERATE_MINILM_DIR` (`cargo xtask bench embed` sets it).

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::mixed_sentences;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::{EmbedOptions, TextEmbedder};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("IPFS_ACCELERATE_MINILM_DIR") else {
        println!("SKIPPED embed bench: IPFS_ACCELERATE_MINILM_DIR is not set (use `cargo xtask bench embed`)");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let model = ModelRef::parse(dir.to_str().unwrap()).unwrap();
    let embedder = TextEmbedder::load(&loader, &model, BackendKind::Cpu).unwrap();

    let mut latency = c.benchmark_group("embed_latency");
    latency.throughput(Throughput::Elements(1));
    latency.bench_function("one_short_sentence", |b| {
        b.iter(|| {
            embedder
                .embed(&["The quick brown fox jumps over the lazy dog."])
                .unwrap()
        })
    });
    latency.finish();

    let sentences = mixed_sentences();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let mut throughput = c.benchmark_group("embed_256_mixed_bs32");
    throughput.throughput(Throughput::Elements(texts.len() as u64));
    throughput.sample_size(10);
    throughput.measurement_time(Duration::from_secs(40));
    for (name, sort_by_length) in [("sorted", true), ("unsorted", false)] {
        let options = EmbedOptions {
            batch_size: 32,
            sort_by_length,
        };
        throughput.bench_function(name, |b| {
            b.iter(|| embedder.embed_with(&texts, options).unwrap())
        });
    }
    throughput.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
