//! `serve`: the HTTP answers against reference.json, bad requests, auth,
//! and shutdown. The load test (64 clients, 2,000 requests) is a bench:
//! `cargo xtask bench serve-load` (`crates/cli/benches/serve_load.rs`).

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate_tests::serve::{agent, assert_json_error, Server};
use serde_json::json;
use std::time::Duration;

/// `serve --model BERT EXTRA...` in a temp home.
fn start(extra: &[&str]) -> Server {
    let home = tempfile::tempdir().unwrap();
    Server::start(cli(home.path()), home, &fixture_model("bert"), extra)
}

#[test]
fn answers_match_reference() {
    let server = start(&[]);
    let (texts, expected) = bert_reference();
    let model = fixture_model("bert").to_str().unwrap().to_owned();

    let body = json!({"model": model, "input": texts}).to_string();
    let (status, answer) = server.post("/v1/embeddings", &body);
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
    let body = json!({"model": model, "input": texts[0], "encoding_format": "base64"}).to_string();
    let (status, answer) = server.post("/v1/embeddings", &body);
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
    let (status, answer) = server.post("/embed", &json!({"inputs": texts}).to_string());
    assert_eq!(status, 200);
    let got: Vec<Vec<f32>> = serde_json::from_value(answer).unwrap();
    for (g, e) in got.iter().zip(&expected) {
        assert!(cosine(g, e) >= 0.99999);
    }

    let (status, endpoints) = server.get("/endpoints");
    assert_eq!(status, 200);
    let endpoints: serde_json::Value = serde_json::from_str(&endpoints).unwrap();
    let first = &endpoints["endpoints"][0];
    assert_eq!(first["backend"], "cpu");
    assert_eq!(first["requests"], 3);
    assert!(first["latency_ms"]["p50"].as_f64().is_some());

    let metrics = server.metrics();
    for line in [
        "ipfs_accelerate_http_requests_total{route=\"/v1/embeddings\",status=\"200\"} 2",
        "ipfs_accelerate_batch_size_bucket",
        "ipfs_accelerate_cache_hits_total{layer=\"local_folder\"}",
    ] {
        assert!(metrics.contains(line), "{metrics}");
    }
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let server = start(&[]);
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    let (s, b) = server.post("/v1/embeddings", "{not json");
    assert_json_error(s, &b, 400);
    for (path, body, code) in [
        ("/v1/embeddings", json!({"model": model, "input": 5}), 400),
        ("/v1/embeddings", json!({"model": model, "input": []}), 400),
        (
            "/v1/embeddings",
            json!({"model": "nosuch/model", "input": "hi"}),
            404,
        ),
        (
            "/v1/completions",
            json!({"model": model, "prompt": "hi"}),
            400,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]}),
            404,
        ),
        ("/no/such/route", json!({}), 404),
    ] {
        server.post_error(path, &body, code);
    }

    // 50 MB body: 413 with a JSON error, read as a client would.
    let big = format!(
        "{{\"model\": \"m\", \"input\": \"{}\"}}",
        "a".repeat(50 * 1024 * 1024)
    );
    let (s, b) = server.post("/v1/embeddings", &big);
    assert_json_error(s, &b, 413);

    let still = json!({"model": model, "input": "still here"}).to_string();
    let (s, b) = server.post("/v1/embeddings", &still);
    assert_eq!(s, 200, "{b}");
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
}

#[test]
fn bearer_token_when_set() {
    let server = start(&["--api-key", "s3cret"]);
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    let body = json!({"model": model, "input": "hi"}).to_string();
    let (s, b) = server.post("/v1/embeddings", &body);
    assert_json_error(s, &b, 401);
    let (s, b) = server.post_with("/v1/embeddings", &body, Some("wrong"));
    assert_json_error(s, &b, 401);
    let (s, _) = server.post_with("/v1/embeddings", &body, Some("s3cret"));
    assert_eq!(s, 200);
    let (status, _) = server.get("/health");
    assert_eq!(status, 200, "/health stays open");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = start(&[]);
    let took = server.terminate();
    assert!(
        took < Duration::from_secs(20),
        "server did not stop on SIGTERM: {took:?}"
    );
}

#[test]
fn serve_fails_when_no_model_loads() {
    let home = tempfile::tempdir().unwrap();
    let out = run(cli(home.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(["--model", "./no/such/model"]));
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
    let request = json!({
        "model": gpt2, "prompt": prompt, "max_tokens": 12, "temperature": 0,
    });
    let (s, b) = server.post("/v1/completions", &request.to_string());
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
    streamed["stream"] = json!(true);
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
    for (path, body) in [
        ("/v1/embeddings", json!({"model": gpt2, "input": "hi"})),
        ("/v1/completions", json!({"model": bert, "prompt": "hi"})),
        (
            "/v1/completions",
            json!({"model": gpt2, "prompt": "hi", "max_tokens": 0}),
        ),
        ("/v1/completions", json!({"model": gpt2, "prompt": ""})),
    ] {
        server.post_error(path, &body, 400);
    }
}

#[test]
fn t5_serves_completions_matching_reference() {
    let t5 = Fixture::new("t5");
    let model = t5.dir.to_str().unwrap().to_owned();
    let server = start(&["--model", &model]);
    let generation = &t5["generation"];
    for (i, text) in t5.texts().iter().enumerate() {
        let request = json!({
            "model": model, "prompt": text, "max_tokens": 12, "temperature": 0,
        });
        let (s, b) = server.post("/v1/completions", &request.to_string());
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            id_list(&b["choices"][0]["token_ids"]),
            id_list(&generation["token_ids"][i])
        );
        assert_eq!(b["choices"][0]["text"], generation["texts"][i]);
    }
    let body = json!({"model": model, "input": "hi"});
    let b = server.post_error("/v1/embeddings", &body, 400);
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
    let Some(file) = smollm2_or_skip("gguf_file_serves_completions") else {
        return;
    };
    let gguf = file.to_str().unwrap().to_owned();
    let server = start(&["--model", &gguf]);
    let request = json!({
        "model": gguf, "prompt": "The capital of Germany is", "max_tokens": 8, "temperature": 0,
    });
    let (s, first) = server.post("/v1/completions", &request.to_string());
    assert_eq!(s, 200, "{first}");
    let (_, second) = server.post("/v1/completions", &request.to_string());
    assert_eq!(
        first["choices"][0]["token_ids"],
        second["choices"][0]["token_ids"]
    );
    let text = first["choices"][0]["text"].as_str().unwrap();
    assert!(text.contains("Berlin"), "{text}");
    assert_eq!(first["backend"], "llamacpp");
}

/// Completions sent at once to a GGUF endpoint run together on llama.cpp
/// (continuous batching: the endpoint runs up to 8 at a time), and each
/// answer equals the one the same request gets alone.
#[test]
fn gguf_concurrent_completions_equal_their_solo_answers() {
    let test = "gguf_concurrent_completions_equal_their_solo_answers";
    let Some(file) = smollm2_or_skip(test) else {
        return;
    };
    let gguf = file.to_str().unwrap().to_owned();
    let server = start(&["--model", &gguf]);
    let prompts = [
        "The capital of Germany is",
        "Bees make",
        "Two plus two is",
        "The sea is",
        "In winter the children of the village",
        "The old lighthouse keeper",
        "My favourite colour is",
        "When the train arrived,",
    ];
    let ids = |prompt: &str| {
        let request = json!({
            "model": gguf, "prompt": prompt, "max_tokens": 16, "temperature": 0,
        });
        let (s, b) = server.post("/v1/completions", &request.to_string());
        assert_eq!(s, 200, "{prompt:?}: {b}");
        assert_eq!(b["backend"], "llamacpp");
        id_list(&b["choices"][0]["token_ids"])
    };
    let solo: Vec<Vec<u32>> = prompts.iter().map(|p| ids(p)).collect();
    let together: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let runs: Vec<_> = prompts
            .iter()
            .map(|p| {
                let ids = &ids;
                scope.spawn(move || ids(p))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for ((prompt, alone), at_once) in prompts.iter().zip(&solo).zip(&together) {
        assert_eq!(alone, at_once, "{prompt:?}: the concurrent answer differs");
        assert!(!alone.is_empty());
    }
}
