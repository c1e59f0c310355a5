//! Sentence embeddings on every backend that can run the model's ONNX graph
//! (candle CPU from safetensors, ONNX Runtime CPU, ONNX Runtime + OpenVINO):
//! latency of one short sentence and throughput over 256 mixed-length
//! sentences at batch 32 (length-sorted), the same texts as `embed`.
//!
//! Also writes the exact batches it feeds (token ids, masks) to
//! `IPFS_ACCELERATE_BENCH_INPUTS`, so `cargo xtask bench embed` can time
//! ONNX Runtime's own Python API on the same graph and inputs.
//!
//! Needs `IPFS_ACCELERATE_EMBED_ONNX_MODEL` (a model folder with
//! `onnx/model.onnx`) and `ORT_DYLIB_PATH` / `IPFS_ACCELERATE_OPENVINO_EP`;
//! `cargo xtask bench embed` sets them.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::mixed_sentences;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::{EmbedOptions, TextEmbedder};
use std::path::Path;
use std::time::Duration;
use tokenizers::{Tokenizer, TruncationParams};

const SHORT: &str = "The quick brown fox jumps over the lazy dog.";

/// The batches the embedder builds (longest first, 32 per batch, right
/// padding with id 0), as `{input_ids, attention_mask, token_type_ids}`.
fn batches(model: &Path, max_len: usize, texts: &[&str], size: usize) -> serde_json::Value {
    let mut tokenizer = Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..TruncationParams::default()
        }))
        .unwrap();
    let mut encodings = tokenizer.encode_batch(texts.to_vec(), true).unwrap();
    encodings.sort_by_key(|e| std::cmp::Reverse(e.len()));
    let batches: Vec<serde_json::Value> = encodings
        .chunks(size)
        .map(|chunk| {
            let seq = chunk.iter().map(|e| e.len()).max().unwrap_or(0);
            let pad = |row: &[u32]| {
                let mut row = row.to_vec();
                row.resize(seq, 0);
                row
            };
            serde_json::json!({
                "input_ids": chunk.iter().map(|e| pad(e.get_ids())).collect::<Vec<_>>(),
                "attention_mask": chunk.iter().map(|e| pad(e.get_attention_mask())).collect::<Vec<_>>(),
                "token_type_ids": chunk.iter().map(|e| pad(e.get_type_ids())).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(batches)
}

fn bench(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("IPFS_ACCELERATE_EMBED_ONNX_MODEL") else {
        println!("SKIPPED embed_onnx bench: IPFS_ACCELERATE_EMBED_ONNX_MODEL is not set (use `cargo xtask bench embed`)");
        return;
    };
    let dir = Path::new(&dir);
    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let model = ModelRef::parse(dir.to_str().unwrap()).unwrap();
    let sentences = mixed_sentences();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let options = EmbedOptions {
        batch_size: 32,
        sort_by_length: true,
    };

    let mut max_len = 512;
    let mut ran = Vec::new();
    for backend in [BackendKind::Cpu, BackendKind::Ort, BackendKind::OpenVino] {
        let embedder = match TextEmbedder::load(&loader, &model, backend) {
            Ok(embedder) => embedder,
            Err(err) => {
                println!("SKIPPED embed_onnx on {backend}: {err}");
                continue;
            }
        };
        max_len = embedder.max_seq_length();
        let mut latency = c.benchmark_group("embed_onnx_latency");
        latency.throughput(Throughput::Elements(1));
        latency.bench_function(backend.name(), |b| {
            b.iter(|| embedder.embed(&[SHORT]).unwrap())
        });
        latency.finish();
        let mut throughput = c.benchmark_group("embed_onnx_256_bs32");
        throughput.throughput(Throughput::Elements(texts.len() as u64));
        throughput.sample_size(10);
        throughput.measurement_time(Duration::from_secs(20));
        throughput.bench_function(backend.name(), |b| {
            b.iter(|| embedder.embed_with(&texts, options).unwrap())
        });
        throughput.finish();
        ran.push(backend.name());
    }
    if let Some(path) = std::env::var_os("IPFS_ACCELERATE_BENCH_INPUTS") {
        let inputs = serde_json::json!({
            "backends": ran,
            "short": batches(dir, max_len, &[SHORT], 1),
            "mixed_bs32": batches(dir, max_len, &texts, 32),
        });
        std::fs::write(path, inputs.to_string()).unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
