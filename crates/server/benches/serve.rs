//! Embedding requests over HTTP against the same model called in-process,
//! at 1, 8 and 64 concurrent clients, with and without dynamic batching.
//!
//! Criterion times one closure at a time; this measures concurrent load, so
//! it keeps its own clock: every configuration sends a fixed number of
//! one-sentence requests and reports requests/s and p50/p99 latency, all in
//! the same run so the figures compare as ratios.
//! Needs `IPFS_ACCELERATE_MINILM_DIR` (`cargo xtask bench serve` sets it).
//!
//! Then chat (SmolLM2-135M-Instruct Q4_1, `IPFS_ACCELERATE_SMOLLM2_GGUF`):
//! time to first token and tokens/s per stream at 1, 4 and 16 concurrent
//! streams, streamed over HTTP (server-sent events) and in-process; and
//! transcription (the Whisper fixture: tiny weights, so the row measures
//! the serving path, not the model) in requests/s at 1 and 4 clients.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use ipfs_accelerate::{
    Accelerator, BackendKind, ChatMessage, EndpointOptions, GenerateOptions, InferRequest,
    InferResponse, Loader, TextStream, TranscribeOptions,
};
use ipfs_accelerate_server::{serve, ServerConfig};
use std::io::BufRead;
use std::time::{Duration, Instant};

const SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Content addressing names data by its hash.",
    "A sentence embedding maps text to a vector.",
    "Peers share model files over IPFS.",
];

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort();
    let at = |q: f64| {
        let i = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e3
    };
    Figures {
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

fn requests_for(clients: usize) -> usize {
    (clients * 24).max(64)
}

async fn in_process(acc: &Accelerator, model: &str, clients: usize) -> Figures {
    let total = requests_for(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let acc = acc.clone();
        let model = model.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (0..total).filter(|i| i % clients == c) {
                let t = Instant::now();
                acc.infer(
                    &model,
                    InferRequest::embed([SENTENCES[i % SENTENCES.len()]]),
                )
                .await
                .unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    figures(latencies, started.elapsed())
}

fn over_http(base: &str, model: &str, clients: usize) -> Figures {
    let total = requests_for(clients);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                    let mut lat = Vec::new();
                    for i in (0..total).filter(|i| i % clients == c) {
                        let body = serde_json::json!({"model": model, "input": SENTENCES[i % SENTENCES.len()]}).to_string();
                        let t = Instant::now();
                        let mut resp = agent
                            .post(&format!("{base}/v1/embeddings"))
                            .header("Content-Type", "application/json")
                            .send(&body)
                            .unwrap();
                        resp.body_mut().read_to_string().unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    figures(latencies, started.elapsed())
}

/// Chat streams: time to first token and decode tokens/s per stream.
struct StreamFigures {
    ttft_p50_ms: f64,
    ttft_max_ms: f64,
    tokens_per_s: f64,
    aggregate_tokens_per_s: f64,
}

/// One stream's timings: first piece, end, tokens generated.
type StreamTiming = (Duration, Duration, usize);

fn stream_figures(mut runs: Vec<StreamTiming>, elapsed: Duration) -> StreamFigures {
    runs.sort_by_key(|r| r.0);
    let ttft: Vec<f64> = runs.iter().map(|r| r.0.as_secs_f64() * 1e3).collect();
    let per_stream: Vec<f64> = runs
        .iter()
        .map(|(first, end, tokens)| {
            (tokens.saturating_sub(1)) as f64 / (*end - *first).as_secs_f64()
        })
        .collect();
    let tokens: usize = runs.iter().map(|r| r.2).sum();
    StreamFigures {
        ttft_p50_ms: ttft[ttft.len() / 2],
        ttft_max_ms: ttft[ttft.len() - 1],
        tokens_per_s: per_stream.iter().sum::<f64>() / per_stream.len() as f64,
        aggregate_tokens_per_s: tokens as f64 / elapsed.as_secs_f64(),
    }
}

const CHAT_PROMPT: &str = "Write a short story about a lighthouse keeper.";
const CHAT_TOKENS: usize = 32;

fn chat_options() -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: CHAT_TOKENS,
        ..GenerateOptions::default()
    }
}

async fn chat_in_process(acc: &Accelerator, model: &str, streams: usize) -> StreamFigures {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let acc = acc.clone();
        let model = model.to_owned();
        tasks.push(tokio::spawn(async move {
            let (stream, mut pieces) = TextStream::channel();
            let request = InferRequest::Chat {
                messages: vec![ChatMessage::text("user", CHAT_PROMPT)],
                options: chat_options(),
                stream: Some(stream),
            };
            let t = Instant::now();
            let answer = tokio::spawn(async move { acc.infer(&model, request).await });
            pieces.recv().await.unwrap();
            let first = t.elapsed();
            while pieces.recv().await.is_some() {}
            let Ok(InferResponse::Generation { generation, .. }) = answer.await.unwrap() else {
                panic!("chat failed");
            };
            (first, t.elapsed(), generation.token_ids.len())
        }));
    }
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await.unwrap());
    }
    stream_figures(runs, started.elapsed())
}

fn chat_over_http(base: &str, model: &str, streams: usize, want: &str) -> StreamFigures {
    let started = Instant::now();
    let runs: Vec<StreamTiming> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|_| {
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                    let body = serde_json::json!({
                        "model": model, "max_tokens": CHAT_TOKENS, "temperature": 0,
                        "messages": [{"role": "user", "content": CHAT_PROMPT}],
                        "stream": true, "stream_options": {"include_usage": true},
                    });
                    let t = Instant::now();
                    let resp = agent
                        .post(&format!("{base}/v1/chat/completions"))
                        .header("Content-Type", "application/json")
                        .send(body.to_string())
                        .unwrap();
                    let reader = std::io::BufReader::new(resp.into_body().into_reader());
                    let (mut first, mut tokens, mut text) = (None, 0, String::new());
                    for line in reader.lines() {
                        let line = line.unwrap();
                        let Some(data) = line.strip_prefix("data: ") else {
                            continue;
                        };
                        if data == "[DONE]" {
                            break;
                        }
                        let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
                        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
                            if !piece.is_empty() && first.is_none() {
                                first = Some(t.elapsed());
                            }
                            text.push_str(piece);
                        }
                        if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                            tokens = n as usize;
                        }
                    }
                    // A benchmark of a wrong answer is no benchmark.
                    assert_eq!(
                        text, want,
                        "the streamed chat differs from the in-process one"
                    );
                    (first.unwrap(), t.elapsed(), tokens)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    stream_figures(runs, started.elapsed())
}

/// A server over `acc` on a free port; stopped when the sender is dropped.
fn start_server(
    runtime: &tokio::runtime::Runtime,
    acc: &Accelerator,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        models: Vec::new(),
        ..ServerConfig::default()
    };
    let server_acc = acc.clone();
    runtime.spawn(async move {
        serve(
            config,
            server_acc,
            move |a| addr_tx.send(a).unwrap(),
            async {
                let _ = stop_rx.await;
            },
        )
        .await
        .unwrap();
    });
    (format!("http://{}", addr_rx.recv().unwrap()), stop_tx)
}

fn chat_rows(runtime: &tokio::runtime::Runtime, cache: &std::path::Path) {
    let Some(gguf) = std::env::var_os("IPFS_ACCELERATE_SMOLLM2_GGUF") else {
        println!("SKIPPED chat rows: IPFS_ACCELERATE_SMOLLM2_GGUF is not set (use `cargo xtask bench serve`)");
        return;
    };
    let model = gguf.to_str().unwrap().to_owned();
    let loader = Loader::builder().cache_dir(cache).build().unwrap();
    let acc = Accelerator::new(loader, EndpointOptions::default());
    runtime
        .block_on(acc.add_endpoint(&model, BackendKind::Cpu))
        .unwrap();
    let (base, _stop) = start_server(runtime, &acc);
    let solo = runtime
        .block_on(acc.infer(
            &model,
            InferRequest::chat(vec![ChatMessage::text("user", CHAT_PROMPT)], chat_options()),
        ))
        .unwrap();
    let InferResponse::Generation { generation, .. } = solo else {
        panic!("chat failed");
    };
    println!();
    println!("SmolLM2-135M-Instruct Q4_1 chat, greedy, {CHAT_TOKENS} new tokens per stream (streams decode one at a time)");
    println!(
        "{:>7} | {:>32} | {:>32} | {:>8}",
        "streams", "in-process ttft p50/max, tok/s", "HTTP ttft p50/max, tok/s", "HTTP/in"
    );
    for streams in [1, 4, 16] {
        let local = runtime.block_on(chat_in_process(&acc, &model, streams));
        let http = chat_over_http(&base, &model, streams, &generation.text);
        println!(
            "{streams:>7} | {:>9.1} {:>9.1} ms {:>6.1} t/s | {:>9.1} {:>9.1} ms {:>6.1} t/s | {:>7.2}x (aggregate: HTTP {:.1}, in-process {:.1} t/s)",
            local.ttft_p50_ms, local.ttft_max_ms, local.tokens_per_s,
            http.ttft_p50_ms, http.ttft_max_ms, http.tokens_per_s,
            http.tokens_per_s / local.tokens_per_s,
            http.aggregate_tokens_per_s, local.aggregate_tokens_per_s,
        );
    }
}

fn transcription_rows(runtime: &tokio::runtime::Runtime, cache: &std::path::Path) {
    let whisper = ipfs_accelerate_tests::fixture_model("whisper");
    let model = whisper.to_str().unwrap().to_owned();
    let wav = std::fs::read(whisper.join("input.wav")).unwrap();
    let audio = ipfs_accelerate::media::decode_wav(&wav).unwrap();
    let loader = Loader::builder().cache_dir(cache).build().unwrap();
    let acc = Accelerator::new(loader, EndpointOptions::default());
    runtime
        .block_on(acc.add_endpoint(&model, BackendKind::Cpu))
        .unwrap();
    let (base, _stop) = start_server(runtime, &acc);
    let transcribe = InferRequest::Transcribe {
        audio,
        options: TranscribeOptions::default(),
    };
    let Ok(InferResponse::Transcription { transcription, .. }) =
        runtime.block_on(acc.infer(&model, transcribe.clone()))
    else {
        panic!("transcription failed");
    };
    let (content_type, form) = ipfs_accelerate_tests::serve::multipart(
        &[("model", &model)],
        Some(("file", "input.wav", &wav)),
    );
    println!();
    println!(
        "transcription, Whisper fixture (tiny random weights), 1.25 s clip, {} tokens",
        transcription.token_ids.len()
    );
    println!(
        "{:>7} | {:>14} | {:>14} | {:>8}",
        "clients", "in-process rps", "HTTP rps", "HTTP/in"
    );
    for clients in [1, 4] {
        let total = clients * 8;
        let started = Instant::now();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..total)
                .map(|_| {
                    let (acc, model, request) = (acc.clone(), model.clone(), transcribe.clone());
                    tokio::spawn(async move { acc.infer(&model, request).await.unwrap() })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let local = total as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..clients {
                let (base, content_type, form, want) =
                    (&base, &content_type, &form, &transcription.text);
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                    for _ in 0..total / clients {
                        let mut resp = agent
                            .post(&format!("{base}/v1/audio/transcriptions"))
                            .header("Content-Type", content_type)
                            .send(&form[..])
                            .unwrap();
                        let answer: serde_json::Value =
                            serde_json::from_str(&resp.body_mut().read_to_string().unwrap())
                                .unwrap();
                        assert_eq!(answer["text"].as_str(), Some(want.as_str()));
                    }
                });
            }
        });
        let http = total as f64 / started.elapsed().as_secs_f64();
        println!(
            "{clients:>7} | {local:>14.2} | {http:>14.2} | {:>7.2}x",
            http / local
        );
    }
}

fn main() {
    let Some(dir) = std::env::var_os("IPFS_ACCELERATE_MINILM_DIR") else {
        println!("SKIPPED serve bench: IPFS_ACCELERATE_MINILM_DIR is not set (use `cargo xtask bench serve`)");
        return;
    };
    let model = dir.to_str().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    println!("all-MiniLM-L6-v2, candle CPU, one sentence per request");
    println!(
        "{:<10} {:>7} | {:>24} | {:>24} | {:>8}",
        "batching", "clients", "in-process rps p50 p99", "HTTP rps p50 p99", "HTTP/in"
    );
    for (label, options) in [
        ("dynamic", EndpointOptions::default()),
        ("off", EndpointOptions::unbatched()),
    ] {
        let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
        let acc = Accelerator::new(loader, options);
        runtime
            .block_on(acc.add_endpoint(&model, BackendKind::Cpu))
            .unwrap();
        // The server shares the accelerator, so both paths use one model.
        let (base, stop_tx) = start_server(&runtime, &acc);
        // Warm up both paths.
        runtime.block_on(in_process(&acc, &model, 1));
        over_http(&base, &model, 1);
        for clients in [1, 8, 64] {
            let local = runtime.block_on(in_process(&acc, &model, clients));
            let http = over_http(&base, &model, clients);
            println!(
                "{label:<10} {clients:>7} | {:>8.1} {:>7.1} {:>7.1} | {:>8.1} {:>7.1} {:>7.1} | {:>7.2}x",
                local.rps, local.p50_ms, local.p99_ms, http.rps, http.p50_ms, http.p99_ms, http.rps / local.rps
            );
        }
        let _ = stop_tx.send(());
    }
    chat_rows(&runtime, cache.path());
    transcription_rows(&runtime, cache.path());
}
