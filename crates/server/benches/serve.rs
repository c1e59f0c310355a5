//! Embedding requests over HTTP against the same model called in-process,
//! at 1, 8 and 64 concurrent clients, with and without dynamic batching.
//!
//! Criterion times one closure at a time; this measures concurrent load, so
//! it keeps its own clock: every configuration sends a fixed number of
//! one-sentence requests and reports requests/s and p50/p99 latency, all in
//! the same run so the figures compare as ratios.
//! Needs `IPFS_ACCELERATE_MINILM_DIR` (`cargo xtask bench serve` sets it).

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use ipfs_accelerate::{Accelerator, BackendKind, EndpointOptions, InferRequest, Loader};
use ipfs_accelerate_server::{serve, ServerConfig};
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
        let base = format!("http://{}", addr_rx.recv().unwrap());
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
}
