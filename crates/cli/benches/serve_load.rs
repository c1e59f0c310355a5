//! The server under load, through the binary: 64 clients send 2,000
//! one-sentence embedding requests to `ipfs-accelerate serve --max-queue 16`
//! (the bert fixture), retrying the 429s a small queue gives. Checks every
//! answer against the reference, that the server's memory does not grow
//! once warm, and that `/metrics` counts every request; reports the time,
//! the 429s and the memory.
//!
//! Was a test in `crates/cli/tests/serve.rs`; it takes minutes on two cores,
//! so it runs on request: `cargo xtask bench serve-load` (or `cargo bench
//! -p ipfs-accelerate-cli --bench serve_load`). Fixture model only: nothing
//! to fetch.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use ipfs_accelerate_tests::serve::{agent, metric, rss_kib, Server};
use ipfs_accelerate_tests::{bert_reference, cosine, fixture_model, runner};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const REQUESTS: usize = 2000;

fn main() {
    // A small queue so that 429s really happen; clients retry them.
    let home = tempfile::tempdir().unwrap();
    let cmd = runner::command(
        Path::new(env!("CARGO_BIN_EXE_ipfs-accelerate")),
        home.path(),
    );
    let server = Server::start(cmd, home, &fixture_model("bert"), &["--max-queue", "16"]);
    let (texts, expected) = bert_reference();
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    let pid = server.child.id();
    let base = server.base.clone();
    let sent = AtomicUsize::new(0);
    let rejected = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let mut rss_mid = 0;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (texts, expected, model, base) = (&texts, &expected, &model, &base);
            let (sent, rejected, ok) = (&sent, &rejected, &ok);
            scope.spawn(move || {
                let agent = agent();
                let mine = (0..REQUESTS).filter(|i| i % CLIENTS == client);
                for i in mine {
                    let pick = i % texts.len();
                    let body =
                        serde_json::json!({"model": model, "input": [texts[pick]]}).to_string();
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(300),
                            "load test took too long"
                        );
                        sent.fetch_add(1, Ordering::Relaxed);
                        let mut resp = agent
                            .post(&format!("{base}/v1/embeddings"))
                            .header("Content-Type", "application/json")
                            .send(&body)
                            .unwrap();
                        let status = resp.status().as_u16();
                        let text = resp.body_mut().read_to_string().unwrap();
                        if status == 429 {
                            rejected.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        assert_eq!(status, 200, "{text}");
                        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                        let got: Vec<f32> =
                            serde_json::from_value(answer["data"][0]["embedding"].clone()).unwrap();
                        assert!(cosine(&got, &expected[pick]) >= 0.99999, "wrong answer");
                        ok.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        // Memory after warm-up, while the load runs.
        while ok.load(Ordering::Relaxed) < 500 {
            std::thread::sleep(Duration::from_millis(5));
        }
        rss_mid = rss_kib(pid);
    });
    let took = started.elapsed();
    let rss_end = rss_kib(pid);
    let ok = ok.into_inner();
    let rejected = rejected.into_inner();
    assert_eq!(ok, REQUESTS);
    assert_eq!(sent.into_inner(), ok + rejected);
    assert!(
        rss_end <= rss_mid + 16 * 1024,
        "server memory grew from {rss_mid} KiB to {rss_end} KiB"
    );
    let metrics = server.metrics();
    let route = "ipfs_accelerate_http_requests_total{route=\"/v1/embeddings\",status=";
    assert_eq!(
        metric(&metrics, &format!("{route}\"200\"}}")),
        REQUESTS as u64
    );
    assert_eq!(
        metric(&metrics, &format!("{route}\"429\"}}")),
        rejected as u64
    );
    let requests = metrics
        .lines()
        .find(|l| l.starts_with("ipfs_accelerate_endpoint_requests_total{"))
        .unwrap();
    assert!(requests.ends_with(&format!(" {REQUESTS}")), "{requests}");
    println!(
        "serve load: {CLIENTS} clients, {REQUESTS} answers in {:.1} s ({:.1} req/s), {rejected} deliberate 429s, RSS {rss_mid} -> {rss_end} KiB",
        took.as_secs_f64(),
        REQUESTS as f64 / took.as_secs_f64()
    );
}
