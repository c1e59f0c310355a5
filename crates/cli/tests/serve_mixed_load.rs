//! One server, three tasks, 32 clients: 1,002 requests mixing chat (a
//! LLaMA fixture with a chat template), embeddings (bert) and transcription
//! uploads (wav2vec2: one forward pass each, where the Whisper fixture
//! decodes 128 tokens, which unoptimised test builds make slow) against `serve --max-queue 8`, so that 429s really
//! happen and are retried. Every answer is checked against what the model
//! gives alone; no status but 200 and 429 is accepted, every 429 is the
//! queue's (`rate_limit_error`), and the server's resident memory must stay
//! flat once warm. Prints the figures.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::*;
use ipfs_accelerate_tests::serve::{agent, metric, multipart, rss_kib, Server};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const REQUESTS: usize = 1002;
/// Memory may move this much between the warm point and the end.
const RSS_SLACK_KIB: u64 = 24 * 1024;

/// One kind of request: how to send it and how to check its answer.
struct Kind {
    path: &'static str,
    content_type: String,
    body: Vec<u8>,
    check: Box<dyn Fn(&Value) + Sync>,
}

#[test]
fn mixed_chat_embeddings_and_transcriptions_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let llama = llama_with_chat_template(dir.path());
    let bert = fixture_model("bert");
    let speech = fixture_model("wav2vec2");
    let home = tempfile::tempdir().unwrap();
    let extra = [
        "--model",
        speech.to_str().unwrap(),
        "--model",
        bert.to_str().unwrap(),
        "--max-queue",
        "8",
    ];
    let server = Server::start(cli(home.path()), home, &llama, &extra);

    // What each request must answer: the model's answer to it alone.
    let chat = json!({
        "model": llama.to_str().unwrap(),
        "messages": [{"role": "user", "content": "Name three rivers."}],
        "max_tokens": 8,
        "temperature": 0,
    });
    let (s, solo) = server.post("/v1/chat/completions", &chat.to_string());
    assert_eq!(s, 200, "{solo}");
    let chat_text = solo["choices"][0]["message"]["content"].clone();
    let (texts, vectors) = bert_reference();
    let wav = std::fs::read(speech.join("input.wav")).unwrap();
    let (form_type, form) = multipart(
        &[("model", speech.to_str().unwrap())],
        Some(("file", "input.wav", &wav)),
    );
    let (s, solo) = server.post_bytes("/v1/audio/transcriptions", &form_type, &form);
    assert_eq!(s, 200, "{solo}");
    let heard: Value = serde_json::from_str(&solo).unwrap();
    let kinds = [
        Kind {
            path: "/v1/chat/completions",
            content_type: "application/json".to_owned(),
            body: chat.to_string().into_bytes(),
            check: Box::new(move |a| assert_eq!(a["choices"][0]["message"]["content"], chat_text)),
        },
        Kind {
            path: "/v1/embeddings",
            content_type: "application/json".to_owned(),
            body: json!({"model": bert.to_str().unwrap(), "input": texts[0]})
                .to_string()
                .into_bytes(),
            check: Box::new(move |a| {
                let got = f32_list(&a["data"][0]["embedding"]);
                assert!(cosine(&got, &vectors[0]) >= 0.99999, "wrong embedding");
            }),
        },
        Kind {
            path: "/v1/audio/transcriptions",
            content_type: form_type,
            body: form,
            check: Box::new(move |a| assert_eq!(a["text"], heard["text"])),
        },
    ];

    let pid = server.child.id();
    let (ok, rejected) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    let mut rss_warm = 0;
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (kinds, ok, rejected, base) = (&kinds, &ok, &rejected, &server.base);
            scope.spawn(move || {
                let agent = agent();
                for i in (0..REQUESTS).filter(|i| i % CLIENTS == client) {
                    let kind = &kinds[i % kinds.len()];
                    loop {
                        assert!(started.elapsed() < Duration::from_secs(300), "too slow");
                        let mut resp = agent
                            .post(&format!("{base}{}", kind.path))
                            .header("Content-Type", &kind.content_type)
                            .send(&kind.body[..])
                            .unwrap();
                        let status = resp.status().as_u16();
                        let answer: Value =
                            serde_json::from_str(&resp.body_mut().read_to_string().unwrap())
                                .unwrap();
                        if status == 429 {
                            assert_eq!(answer["error"]["type"], "rate_limit_error", "{answer}");
                            rejected.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        assert_eq!(status, 200, "{}: {answer}", kind.path);
                        (kind.check)(&answer);
                        ok.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        // Memory once warm (every kind has run many times).
        while ok.load(Ordering::Relaxed) < REQUESTS / 4 {
            std::thread::sleep(Duration::from_millis(5));
        }
        rss_warm = rss_kib(pid);
    });
    let took = started.elapsed();
    let rss_end = rss_kib(pid);
    let (ok, rejected) = (ok.into_inner(), rejected.into_inner());
    assert_eq!(ok, REQUESTS);
    let metrics = server.metrics();
    for kind in &kinds {
        let served = metric(
            &metrics,
            &format!(
                "ipfs_accelerate_http_requests_total{{route=\"{}\",status=\"200\"}}",
                kind.path
            ),
        );
        // Each kind's share (plus the solo request that set its answer).
        assert!(
            served as usize >= REQUESTS / kinds.len(),
            "{}: {served}",
            kind.path
        );
        // (/health answers 503 while the models load: that is not load.)
        let failed = metrics.lines().any(|l| {
            l.starts_with("ipfs_accelerate_http_requests_total{")
                && !l.contains("route=\"/health\"")
                && l.contains("status=\"5")
        });
        assert!(!failed, "a 5xx was answered:\n{metrics}");
    }
    println!(
        "mixed load: {CLIENTS} clients, {REQUESTS} answers (chat, embeddings, transcriptions) in {:.1} s ({:.1} req/s), {rejected} deliberate 429s retried, server RSS {rss_warm} KiB warm -> {rss_end} KiB at the end",
        took.as_secs_f64(),
        REQUESTS as f64 / took.as_secs_f64()
    );
    assert!(
        rss_end <= rss_warm + RSS_SLACK_KIB,
        "server memory grew from {rss_warm} KiB to {rss_end} KiB"
    );
}
