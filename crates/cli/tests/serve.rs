//! `serve`: the HTTP answers against reference.json, bad requests, auth,
//! a bounded load test, and shutdown.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
    _home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn start(extra: &[&str]) -> Server {
    let home = tempfile::tempdir().unwrap();
    let mut child = cli(home.path())
        .args(["serve", "--addr", "127.0.0.1:0", "--model"])
        .arg(fixture_model("bert"))
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let server = Server {
        child,
        base,
        _home: home,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) = get(&server, "/health");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "server never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn get(server: &Server, path: &str) -> (u16, String) {
    let mut resp = agent()
        .get(&format!("{}{path}", server.base))
        .call()
        .unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    )
}

fn post(server: &Server, path: &str, body: &str) -> (u16, serde_json::Value) {
    post_with(server, path, body, None)
}

fn post_with(
    server: &Server,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = agent()
        .post(&format!("{}{path}", server.base))
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} answered non-JSON ({e}): {text}"));
    (status, value)
}

fn assert_json_error(status: u16, body: &serde_json::Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body["error"]["code"], want);
}

#[test]
fn answers_match_reference() {
    let server = start(&[]);
    let (texts, expected) = bert_reference();
    let model = fixture_model("bert").to_str().unwrap().to_owned();

    let body = serde_json::json!({"model": model, "input": texts}).to_string();
    let (status, answer) = post(&server, "/v1/embeddings", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], model.as_str());
    assert_eq!(answer["backend"], "cpu");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    for (i, item) in answer["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(item["index"], i);
        let got: Vec<f32> = serde_json::from_value(item["embedding"].clone()).unwrap();
        assert!(cosine(&got, &expected[i]) >= 0.99999);
    }

    // base64, as the official OpenAI client asks by default.
    let body = serde_json::json!({"model": model, "input": texts[0], "encoding_format": "base64"})
        .to_string();
    let (status, answer) = post(&server, "/v1/embeddings", &body);
    assert_eq!(status, 200);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let got: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(cosine(&got, &expected[0]) >= 0.99999);

    // TEI's shape.
    let (status, answer) = post(
        &server,
        "/embed",
        &serde_json::json!({"inputs": texts}).to_string(),
    );
    assert_eq!(status, 200);
    let got: Vec<Vec<f32>> = serde_json::from_value(answer).unwrap();
    for (g, e) in got.iter().zip(&expected) {
        assert!(cosine(g, e) >= 0.99999);
    }

    let (status, endpoints) = get(&server, "/endpoints");
    assert_eq!(status, 200);
    let endpoints: serde_json::Value = serde_json::from_str(&endpoints).unwrap();
    let first = &endpoints["endpoints"][0];
    assert_eq!(first["backend"], "cpu");
    assert_eq!(first["requests"], 3);
    assert!(first["latency_ms"]["p50"].as_f64().is_some());

    let (status, metrics) = get(&server, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "ipfs_accelerate_http_requests_total{route=\"/v1/embeddings\",status=\"200\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("ipfs_accelerate_batch_size_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ipfs_accelerate_cache_hits_total{layer=\"local_folder\"}"),
        "{metrics}"
    );
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let server = start(&[]);
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    let (s, b) = post(&server, "/v1/embeddings", "{not json");
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/embeddings",
        &serde_json::json!({"model": model, "input": 5}).to_string(),
    );
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/embeddings",
        &serde_json::json!({"model": model, "input": []}).to_string(),
    );
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/embeddings",
        &serde_json::json!({"model": "nosuch/model", "input": "hi"}).to_string(),
    );
    assert_json_error(s, &b, 404);
    let (s, b) = post(
        &server,
        "/v1/completions",
        &serde_json::json!({"model": model, "prompt": "hi"}).to_string(),
    );
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/chat/completions",
        &serde_json::json!({"model": "x", "messages": []}).to_string(),
    );
    assert_json_error(s, &b, 404);
    let (s, b) = post(&server, "/no/such/route", "{}");
    assert_json_error(s, &b, 404);

    // 50 MB body: 413 with a JSON error, read as a client would.
    let big = format!(
        "{{\"model\": \"m\", \"input\": \"{}\"}}",
        "a".repeat(50 * 1024 * 1024)
    );
    let (s, b) = post(&server, "/v1/embeddings", &big);
    assert_json_error(s, &b, 413);

    let (s, b) = post(
        &server,
        "/v1/embeddings",
        &serde_json::json!({"model": model, "input": "still here"}).to_string(),
    );
    assert_eq!(s, 200, "{b}");
    let (status, _) = get(&server, "/health");
    assert_eq!(status, 200);
}

#[test]
fn bearer_token_when_set() {
    let server = start(&["--api-key", "s3cret"]);
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    let body = serde_json::json!({"model": model, "input": "hi"}).to_string();
    let (s, b) = post(&server, "/v1/embeddings", &body);
    assert_json_error(s, &b, 401);
    let (s, b) = post_with(&server, "/v1/embeddings", &body, Some("wrong"));
    assert_json_error(s, &b, 401);
    let (s, _) = post_with(&server, "/v1/embeddings", &body, Some("s3cret"));
    assert_eq!(s, 200);
    let (status, _) = get(&server, "/health");
    assert_eq!(status, 200, "/health stays open");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn metric(metrics: &str, line_prefix: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn load_test_64_clients_2000_requests() {
    // A small queue so that 429s really happen; clients retry them.
    let server = start(&["--max-queue", "16"]);
    let (texts, expected) = bert_reference();
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    let pid = server.child.id();
    let base = server.base.clone();
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let rejected = std::sync::atomic::AtomicUsize::new(0);
    let ok = std::sync::atomic::AtomicUsize::new(0);
    let mut rss_mid = 0;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..64 {
            let (texts, expected, model, base) = (&texts, &expected, &model, &base);
            let (sent, rejected, ok) = (&sent, &rejected, &ok);
            scope.spawn(move || {
                let agent = agent();
                let mine = (0..2000).filter(|i| i % 64 == client);
                for i in mine {
                    let pick = i % texts.len();
                    let body =
                        serde_json::json!({"model": model, "input": [texts[pick]]}).to_string();
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(300),
                            "load test took too long"
                        );
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let mut resp = agent
                            .post(&format!("{base}/v1/embeddings"))
                            .header("Content-Type", "application/json")
                            .send(&body)
                            .unwrap();
                        let status = resp.status().as_u16();
                        let text = resp.body_mut().read_to_string().unwrap();
                        if status == 429 {
                            rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        assert_eq!(status, 200, "{text}");
                        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                        let got: Vec<f32> =
                            serde_json::from_value(answer["data"][0]["embedding"].clone()).unwrap();
                        assert!(cosine(&got, &expected[pick]) >= 0.99999, "wrong answer");
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        // Memory after warm-up, while the load runs.
        while ok.load(std::sync::atomic::Ordering::Relaxed) < 500 {
            std::thread::sleep(Duration::from_millis(5));
        }
        rss_mid = rss_kib(pid);
    });
    let rss_end = rss_kib(pid);
    let ok = ok.into_inner();
    let rejected = rejected.into_inner();
    assert_eq!(ok, 2000);
    assert_eq!(sent.into_inner(), ok + rejected);
    assert!(
        rss_end <= rss_mid + 16 * 1024,
        "server memory grew from {rss_mid} KiB to {rss_end} KiB"
    );
    let (_, metrics) = get(&server, "/metrics");
    let route = "ipfs_accelerate_http_requests_total{route=\"/v1/embeddings\",status=";
    assert_eq!(metric(&metrics, &format!("{route}\"200\"}}")), 2000);
    assert_eq!(
        metric(&metrics, &format!("{route}\"429\"}}")),
        rejected as u64
    );
    let requests = metrics
        .lines()
        .find(|l| l.starts_with("ipfs_accelerate_endpoint_requests_total{"))
        .unwrap();
    assert!(requests.ends_with(" 2000"), "{requests}");
    eprintln!(
        "load test: 2000 answers, {rejected} deliberate 429s, RSS {rss_mid} -> {rss_end} KiB"
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = start(&[]);
    let pid = server.child.id();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "exit {exit:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_fails_when_no_model_loads() {
    let home = tempfile::tempdir().unwrap();
    let out = run(cli(home.path()).args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--model",
        "./no/such/model",
    ]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: no model could be loaded"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn completions_match_reference_whole_and_streamed() {
    let gpt2 = fixture_model("gpt2").to_str().unwrap().to_owned();
    let server = start(&["--model", &gpt2]);
    let reference = reference("gpt2");
    let prompt = reference["inputs"]["prompt"].as_str().unwrap();
    let expected_ids = id_list(&reference["prompt"]["token_ids"]);
    let expected_text = reference["prompt"]["text"].as_str().unwrap();
    let request = serde_json::json!({
        "model": gpt2, "prompt": prompt, "max_tokens": 12, "temperature": 0,
    });
    let (s, b) = post(&server, "/v1/completions", &request.to_string());
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["object"], "text_completion");
    assert_eq!(b["backend"], "cpu");
    assert_eq!(id_list(&b["choices"][0]["token_ids"]), expected_ids);
    assert_eq!(b["choices"][0]["text"], expected_text);
    assert_eq!(b["choices"][0]["finish_reason"], "length");
    assert_eq!(b["usage"]["completion_tokens"], 12);
    assert_eq!(b["usage"]["prompt_tokens"], 13);

    // Streamed: the pieces add up to the same text, then [DONE].
    let mut streamed = request.clone();
    streamed["stream"] = serde_json::json!(true);
    let mut resp = agent()
        .post(&format!("{}/v1/completions", server.base))
        .header("Content-Type", "application/json")
        .send(streamed.to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body_mut().read_to_string().unwrap();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, expected_text);
    assert!(chunks.len() > 2, "streamed in pieces: {body}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );

    // Each model answers its own task only.
    let bert = fixture_model("bert").to_str().unwrap().to_owned();
    let (s, b) = post(
        &server,
        "/v1/embeddings",
        &serde_json::json!({"model": gpt2, "input": "hi"}).to_string(),
    );
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/completions",
        &serde_json::json!({"model": bert, "prompt": "hi"}).to_string(),
    );
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/completions",
        &serde_json::json!({"model": gpt2, "prompt": "hi", "max_tokens": 0}).to_string(),
    );
    assert_json_error(s, &b, 400);
    let (s, b) = post(
        &server,
        "/v1/completions",
        &serde_json::json!({"model": gpt2, "prompt": ""}).to_string(),
    );
    assert_json_error(s, &b, 400);
}

#[test]
fn t5_serves_completions_matching_reference() {
    let t5 = fixture_model("t5").to_str().unwrap().to_owned();
    let server = start(&["--model", &t5]);
    let reference = reference("t5");
    for (i, text) in reference["inputs"]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let request = serde_json::json!({
            "model": t5, "prompt": text, "max_tokens": 12, "temperature": 0,
        });
        let (s, b) = post(&server, "/v1/completions", &request.to_string());
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            id_list(&b["choices"][0]["token_ids"]),
            id_list(&reference["generation"]["token_ids"][i])
        );
        assert_eq!(b["choices"][0]["text"], reference["generation"]["texts"][i]);
    }
    let (s, b) = post(
        &server,
        "/v1/embeddings",
        &serde_json::json!({"model": t5, "input": "hi"}).to_string(),
    );
    assert_json_error(s, &b, 400);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("completions"),
        "{b}"
    );
}

#[test]
fn gguf_file_serves_completions() {
    let Some(file) = smollm2_gguf() else {
        return skip(
            "gguf_file_serves_completions",
            "IPFS_ACCELERATE_SMOLLM2_GGUF is not set (run `cargo xtask fetch-models`)",
        );
    };
    let gguf = file.to_str().unwrap().to_owned();
    let server = start(&["--model", &gguf]);
    let request = serde_json::json!({
        "model": gguf, "prompt": "The capital of Germany is", "max_tokens": 8, "temperature": 0,
    });
    let (s, first) = post(&server, "/v1/completions", &request.to_string());
    assert_eq!(s, 200, "{first}");
    let (_, second) = post(&server, "/v1/completions", &request.to_string());
    assert_eq!(
        first["choices"][0]["token_ids"],
        second["choices"][0]["token_ids"]
    );
    let text = first["choices"][0]["text"].as_str().unwrap();
    assert!(text.contains("Berlin"), "{text}");
}
