//! Regression tests for the defects an outside battery found (issue 22),
//! each through the real CLI or the real server: a generation its client
//! abandons, unbounded inputs, half-sent requests, an exposed bind, config
//! values that used to panic, stale temp files, a malformed manifest, bad
//! media, HTTP details, read-only caches, negative values and backtraces.
//! `docs/reliability.md` lists them with the limits they rely on.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate_tests::serve::{agent, assert_json_error, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `serve --model MODEL EXTRA...` in a temp home.
fn serve(model: &Path, extra: &[&str]) -> Server {
    let home = tempfile::tempdir().unwrap();
    Server::start(cli(home.path()), home, model, extra)
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// `host:port` of a server's base URL.
fn host_port(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Sends `head` (and `body`) on a fresh connection and leaves it open.
fn send_raw(server: &Server, head: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(host_port(server)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    stream
}

/// A complete JSON POST as raw bytes.
fn raw_post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The `/endpoints` entry of `model`.
fn endpoint(server: &Server, model: &str) -> Value {
    let (status, text) = server.get("/endpoints");
    assert_eq!(status, 200, "{text}");
    let all: Value = serde_json::from_str(&text).unwrap();
    all["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint {model}: {all}"))
}

/// Waits until `/endpoints` counts `want` cancelled generations of `model`.
fn wait_for_cancelled(server: &Server, model: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = endpoint(server, model);
        if e["cancelled"].as_u64().unwrap() >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned generation was never cancelled: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A T5 request that decodes until the token cap: the fixture never
/// produces EOS for this prompt, so only a cap or a cancellation ends it.
fn endless_t5(model: &str, max_tokens: u64, stream: bool) -> String {
    json!({
        "model": model,
        "prompt": "translate English to German: hello",
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    })
    .to_string()
}

/// Defect 1: a client that leaves stops its generation (whole or
/// streamed), `max_tokens` is capped server-side, and the model keeps
/// answering.
#[test]
fn an_abandoned_generation_is_cancelled_and_the_model_keeps_serving() {
    let t5 = Fixture::new("t5");
    let model = path_str(&t5.dir);
    let server = serve(&t5.dir, &[]);

    let b = server.post_error(
        "/v1/completions",
        &serde_json::from_str(&endless_t5(&model, 1_000_000_000, false)).unwrap(),
        400,
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("limit"),
        "{b}"
    );

    // Whole answer asked for, client gone after half a second.
    let conn = send_raw(
        &server,
        &raw_post("/v1/completions", &endless_t5(&model, 4000, false)),
        b"",
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(conn);
    wait_for_cancelled(&server, &model, 1);

    // Streamed, client gone after the first events.
    let mut conn = send_raw(
        &server,
        &raw_post("/v1/completions", &endless_t5(&model, 4000, true)),
        b"",
    );
    let mut first = [0u8; 256];
    assert!(conn.read(&mut first).unwrap() > 0);
    drop(conn);
    wait_for_cancelled(&server, &model, 2);

    // The model answers the next request as the reference says.
    let request = json!({
        "model": model, "prompt": t5.texts()[0], "max_tokens": 12, "temperature": 0,
    });
    let (s, b) = server.post("/v1/completions", &request.to_string());
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        id_list(&b["choices"][0]["token_ids"]),
        id_list(&t5["generation"]["token_ids"][0])
    );
}

/// Defect 1 (CLI): a relative-position model stops at the documented cap.
#[test]
fn text2text_with_a_huge_max_new_tokens_stops_at_the_cap() {
    let home = tempfile::tempdir().unwrap();
    let answer = json_ok(
        &cli(home.path())
            .args(["text2text", "--json", "--model"])
            .arg(fixture_model("t5"))
            .args(["--max-new-tokens", "1000000000"])
            .arg("translate English to German: hello")
            .output()
            .unwrap(),
    );
    let generated = answer["token_ids"].as_array().unwrap().len();
    assert!(generated <= 4096, "{generated} tokens");
    assert_eq!(answer["stop_reason"], "context_full", "{answer}");
}

/// Defect 2: a 30 KB T5 prompt is refused (CLI and server), not allocated.
#[test]
fn an_overlong_t5_prompt_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let long = "word ".repeat(6000);
    let line = failure(
        cli(home.path())
            .args(["text2text", "--json", "--model"])
            .arg(fixture_model("t5"))
            .arg(&long),
    );
    assert!(line.contains("takes at most"), "{line}");

    let t5 = fixture_model("t5");
    let server = serve(&t5, &[]);
    let body = json!({"model": path_str(&t5), "prompt": long, "max_tokens": 4});
    let b = server.post_error("/v1/completions", &body, 400);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("takes at most"),
        "{b}"
    );
}

/// Defect 3: half-sent headers are dropped after the header timeout, a
/// half-sent body answers 408, neither blocks other clients, and SIGTERM
/// stops the server with connections still half-open.
#[test]
fn half_sent_requests_time_out_and_block_nobody() {
    let bert = fixture_model("bert");
    let mut server = serve(&bert, &["--header-timeout-s", "2", "--body-timeout-s", "2"]);
    let mut half_open: Vec<TcpStream> = (0..50)
        .map(|_| send_raw(&server, "POST /v1/embeddings HTTP/1.1\r\nHost: t", b""))
        .collect();
    let mut half_body = send_raw(
        &server,
        "POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        b"{\"model\": ",
    );

    let body = json!({"model": path_str(&bert), "input": "still served"}).to_string();
    let start = Instant::now();
    let (s, b) = server.post("/v1/embeddings", &body);
    assert_eq!(s, 200, "{b}");
    assert!(start.elapsed() < Duration::from_secs(5));

    // The half-sent body: 408 with a JSON error.
    half_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = half_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":408"), "{answer}");

    // The half-sent headers: closed by the server.
    for conn in &mut half_open {
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 256];
        // EOF (or an answer, or a reset): the server let go of it. Only a
        // read that times out means it still holds the connection.
        if let Err(e) = conn.read(&mut buf) {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a half-open connection is still held: {e}"
            );
        }
    }

    // SIGTERM with fresh half-open connections.
    let _again: Vec<TcpStream> = (0..10)
        .map(|_| send_raw(&server, "GET /health HTTP/1.1\r\n", b""))
        .collect();
    let took = server.terminate();
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// The acceptance: a server under an abandoned endless generation,
/// 50 half-open connections, a 30 KB T5 prompt, a GET on a POST route and a
/// `text/plain` body still answers a normal request within its usual
/// latency, and exits within 15 s of SIGTERM.
#[test]
fn a_server_under_abuse_keeps_its_latency_and_stops_on_sigterm() {
    let bert = fixture_model("bert");
    let t5 = fixture_model("t5");
    let mut server = serve(&bert, &["--model", t5.to_str().unwrap()]);
    let normal = json!({"model": path_str(&bert), "input": "a normal request"}).to_string();
    let time_normal = |server: &Server| {
        let start = Instant::now();
        let (s, b) = server.post("/v1/embeddings", &normal);
        assert_eq!(s, 200, "{b}");
        start.elapsed()
    };
    time_normal(&server);
    let usual = (0..5).map(|_| time_normal(&server)).max().unwrap();

    let endless = send_raw(
        &server,
        &raw_post("/v1/completions", &endless_t5(&path_str(&t5), 4000, false)),
        b"",
    );
    std::thread::sleep(Duration::from_millis(300));
    let _half_open: Vec<TcpStream> = (0..50)
        .map(|_| send_raw(&server, "POST /v1/embeddings HTTP/1.1\r\nHost: t", b""))
        .collect();
    // Queued behind the endless generation: answered once that is cancelled.
    let long = json!({"model": path_str(&t5), "prompt": "word ".repeat(6000), "max_tokens": 4});
    let base = server.base.clone();
    let long_prompt = std::thread::spawn(move || {
        let mut resp = agent()
            .post(&format!("{base}/v1/completions"))
            .header("Content-Type", "application/json")
            .send(long.to_string())
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    });
    let mut get = agent()
        .get(&format!("{}/v1/embeddings", server.base))
        .call()
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let get_body: Value = serde_json::from_str(&get.body_mut().read_to_string().unwrap()).unwrap();
    assert_json_error(405, &get_body, 405);
    let mut plain = agent()
        .post(&format!("{}/v1/embeddings", server.base))
        .header("Content-Type", "text/plain")
        .send(normal.as_str())
        .unwrap();
    assert_eq!(plain.status().as_u16(), 415);
    let _ = plain.body_mut().read_to_string();
    drop(endless);
    wait_for_cancelled(&server, &path_str(&t5), 1);
    let (status, text) = long_prompt.join().unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("takes at most"), "{text}");

    let after = (0..5).map(|_| time_normal(&server)).max().unwrap();
    assert!(
        after <= usual * 3 + Duration::from_millis(500),
        "usual {usual:?}, under abuse {after:?}"
    );
    let took = server.terminate();
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// Defect 4: a non-loopback bind needs a key or an explicit opt-out.
#[test]
fn a_network_bind_without_a_key_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let bert = fixture_model("bert");
    let line = failure(
        cli(home.path())
            .args(["serve", "--addr", "0.0.0.0:0", "--model"])
            .arg(&bert),
    );
    assert!(line.contains("--insecure-no-auth"), "{line}");
    assert!(line.contains("--api-key"), "{line}");
    for extra in [&["--insecure-no-auth"][..], &["--api-key", "k"][..]] {
        let mut child = cli(home.path())
            .args(["serve", "--addr", "0.0.0.0:0", "--model"])
            .arg(&bert)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        // The opt-out is logged as a warning before the address.
        let printed: Vec<String> = std::io::BufRead::lines(stderr)
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("listening on"))
            .collect();
        let listening = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert!(listening, "{extra:?}: {printed:?}");
        if extra[0] == "--insecure-no-auth" {
            assert!(
                printed.iter().any(|l| l.contains("without an API key")),
                "{printed:?}"
            );
        }
    }
}

/// Edits a copy of fixture `name`'s config.json and returns the copy.
fn with_config(home: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    let model = fixture_copy(name, home);
    let path = model.join("config.json");
    let mut config = read_json(&path);
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    model
}

/// Defect 5: structural config values that used to panic (or fail only at
/// inference) are one-line errors at load, naming the value.
#[test]
fn structural_config_values_fail_at_load() {
    let home = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, Value, &str); 6] = [
        ("bert", "num_attention_heads", json!(0), "embed"),
        // Found by the fuzzer: no room beside [CLS] and [SEP].
        ("bert", "max_position_embeddings", json!(1), "embed"),
        ("gpt2", "n_head", json!(0), "generate"),
        ("gpt2", "n_head", json!(5), "generate"),
        ("gpt2", "n_positions", json!(1u64 << 40), "generate"),
        (
            "llama",
            "rope_scaling",
            json!({"rope_type": "linear", "factor": 0.0}),
            "generate",
        ),
    ];
    for (name, key, value, command) in cases {
        let model = with_config(home.path(), name, |c| c[key] = value.clone());
        let line = failure_of(cli(home.path()), command, &model, &["hello"]);
        let named = if key == "rope_scaling" { "factor" } else { key };
        assert!(line.contains(named), "{name} {key}={value}: {line}");
        std::fs::remove_dir_all(&model).unwrap();
    }
}

/// Defect 6: a SIGKILLed import's temp file is swept by the next command.
#[test]
fn a_killed_import_leaves_no_temp_file_behind() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("big");
    std::fs::create_dir_all(&folder).unwrap();
    // Sparse: instant to make, seconds to hash and copy.
    let big = std::fs::File::create(folder.join("weights.bin")).unwrap();
    big.set_len(4 << 30).unwrap();
    drop(big);
    let mut import = cli(home.path())
        .args(["cache", "import"])
        .arg(&folder)
        .args(["--as", "org/big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp = home.path().join("cache").join("tmp");
    let part = |tmp: &Path| {
        std::fs::read_dir(tmp)
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "part"))
            })
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !part(&tmp) {
        assert!(
            Instant::now() < deadline,
            "the import never started writing"
        );
        assert!(import.try_wait().unwrap().is_none(), "import ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    import.kill().unwrap();
    import.wait().unwrap();
    assert!(part(&tmp), "the killed import left its temp file");
    // Past the grace period a writer has to take its lock.
    std::thread::sleep(Duration::from_millis(2200));
    let report = json_ok(
        &cli(home.path())
            .args(["cache", "verify", "--json"])
            .output()
            .unwrap(),
    );
    assert!(!part(&tmp), "{report}");
    assert!(
        report["removed_temp_files"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_eq!(report["ok"], true, "{report}");
}

/// Defect 7: a malformed manifest and a garbage stats.json are reported
/// and skipped; every cache command keeps working.
#[test]
fn one_malformed_manifest_does_not_break_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let cmd = || cli(home.path());
    json_of(
        cmd()
            .args(["cache", "import", "--json"])
            .arg(fixture_model("bert"))
            .args(["--as", "fixtures/bert"]),
    );
    let cache = home.path().join("cache");
    std::fs::write(
        cache.join("manifests").join("org%2Fbroken@main.json"),
        "{garbage",
    )
    .unwrap();
    std::fs::write(cache.join("stats.json"), "\u{0}not json").unwrap();

    let ls = json_of(cmd().args(["cache", "ls", "--json"]));
    assert_eq!(ls["models"].as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls["models"][0]["id"], "fixtures/bert");
    let bad = ls["unreadable_manifests"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{ls}");
    assert!(bad[0]["path"].as_str().unwrap().contains("broken"), "{ls}");

    let verify = json_of(cmd().args(["cache", "verify", "--json"]));
    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["unreadable_manifests"].as_array().unwrap().len(), 1);
    assert!(verify["missing"].as_array().unwrap().is_empty());

    let gc = json_of(cmd().args(["cache", "gc", "--json"]));
    assert_eq!(gc["removed_blobs"], 0, "{gc}");
    json_of(cmd().args(["cache", "pin", "--json", "fixtures/bert"]));
    json_of(cmd().args(["status", "--json"]));
    // And the model still loads from the cache.
    let out = run(cmd()
        .args(["embed", "--json", "--model", "fixtures/bert"])
        .arg("hello"));
    json_ok(&out);
}

/// Defect 8: a truncated JPEG and an all-NaN float WAV are refused.
#[test]
fn truncated_jpeg_and_nan_audio_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let jpeg = home.path().join("cut.jpg");
    write_prefix(&fixtures_dir().join("media/gradient.jpg"), &jpeg, |_| 300);
    let line = failure_of(
        cli(home.path()),
        "similarity",
        &fixture_model("clip"),
        &["--image", jpeg.to_str().unwrap(), "a photo"],
    );
    assert!(line.contains("truncated"), "{line}");

    // 16 kHz mono IEEE float, one second of NaN.
    let samples = 16_000u32;
    let data = samples * 4;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&16_000u32.to_le_bytes());
    wav.extend_from_slice(&(16_000u32 * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&32u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data.to_le_bytes());
    for _ in 0..samples {
        wav.extend_from_slice(&f32::NAN.to_le_bytes());
    }
    let nan = home.path().join("nan.wav");
    std::fs::write(&nan, wav).unwrap();
    let line = failure(
        cli(home.path())
            .args(["transcribe", "--json", "--model"])
            .arg(fixture_model("whisper"))
            .arg(&nan),
    );
    assert!(line.contains("non-finite"), "{line}");
}

/// Defect 9: JSON routes want `application/json`, the bearer scheme is
/// case-insensitive, and a 405 carries the JSON error body.
#[test]
fn http_details() {
    let bert = fixture_model("bert");
    let server = serve(&bert, &["--api-key", "s3cret"]);
    let body = json!({"model": path_str(&bert), "input": "hi"}).to_string();
    let post = |content_type: &str, authorization: &str| {
        let mut resp = agent()
            .post(&format!("{}/v1/embeddings", server.base))
            .header("Content-Type", content_type)
            .header("Authorization", authorization)
            .send(body.as_str())
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str::<Value>(&text).unwrap())
    };
    let (s, b) = post("text/plain", "Bearer s3cret");
    assert_json_error(s, &b, 415);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (s, b) = post(
            "application/json; charset=utf-8",
            &format!("{scheme} s3cret"),
        );
        assert_eq!(s, 200, "{scheme}: {b}");
    }
    let mut resp = agent()
        .get(&format!("{}/v1/completions", server.base))
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert!(
        resp.headers().get("allow").is_some(),
        "405 names the allowed methods"
    );
    let b: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_json_error(405, &b, 405);
}

/// Defect 10: a cache the process cannot write still serves what it holds.
#[test]
fn a_read_only_cache_serves_cached_models() {
    let home = tempfile::tempdir().unwrap();
    json_of(
        cli(home.path())
            .args(["cache", "import", "--json"])
            .arg(fixture_model("bert"))
            .args(["--as", "fixtures/bert"]),
    );
    let (texts, reference) = bert_reference();
    // Read-only for everyone; root ignores modes, so as root the CLI runs
    // as `nobody` (setpriv), for whom the modes apply.
    chmod_tree(home.path(), false);
    let as_root = running_as_root();
    // `nobody` may not reach the build folder (a checkout under /root): the
    // binary is linked (or copied) into a folder everyone can enter.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("ipfs-accelerate");
    if std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).unwrap();
    }
    assert!(Command::new("chmod")
        .arg("a+rx")
        .arg(bin_dir.path())
        .status()
        .unwrap()
        .success());
    let mut cmd = if as_root {
        // The same clean environment as every run, through `setpriv`.
        let mut c = runner::command(Path::new("setpriv"), home.path());
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        cli(home.path())
    };
    let out = run(cmd
        .args(["embed", "--json", "--model", "fixtures/bert"])
        .args(&texts));
    chmod_tree(home.path(), true);
    let answer = json_ok(&out);
    let got: Vec<Vec<f32>> = serde_json::from_value(answer["embeddings"].clone()).unwrap();
    for (g, e) in got.iter().zip(&reference) {
        assert!(cosine(g, e) >= 0.99999);
    }
}

/// Whether this process runs as root (modes do not bind it).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes `dir` and everything under it readable by everyone, and writable
/// (by its owner) or not.
fn chmod_tree(dir: &Path, writable: bool) {
    let mode = if writable { "u+w,a+rX" } else { "a-w,a+rX" };
    assert!(Command::new("chmod")
        .args(["-R", mode])
        .arg(dir)
        .status()
        .unwrap()
        .success());
}

/// Defect 10: negative-looking values reach the option's own check, and
/// errors stay one line even with RUST_BACKTRACE set.
#[test]
fn negative_values_and_backtraces_stay_one_line() {
    let home = tempfile::tempdir().unwrap();
    let line = failure_of(
        cli(home.path()),
        "generate",
        &fixture_model("gpt2"),
        &["--temperature", "-1", "hello"],
    );
    assert!(
        line.contains("--temperature must be a positive number"),
        "{line}"
    );

    // A config that disagrees with the weights: candle's shape error, which
    // carries a backtrace when RUST_BACKTRACE is set.
    let model = with_config(home.path(), "bert", |c| c["intermediate_size"] = json!(48));
    let mut cmd = cli(home.path());
    cmd.env("RUST_BACKTRACE", "1");
    let line = failure_of(cmd, "embed", &model, &["hello"]);
    assert!(line.len() < 600, "{} chars: {line}", line.len());
    assert!(!line.contains("backtrace"), "{line}");
}

/// Found by the fuzzer: tokenizer.json files on which the tokenizers crate
/// panics (a syntax error inside the decoder section; a post-processor
/// template naming a special token it does not define) are one-line errors
/// at load.
#[test]
fn tokenizers_that_panic_inside_the_library_are_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(fixture_model("bert").join("tokenizer.json")).unwrap();
    let mut undefined: Value = serde_json::from_str(&original).unwrap();
    undefined["post_processor"]["special_tokens"]
        .as_object_mut()
        .unwrap()
        .remove("[SEP]");
    let decoder_at = original.find("\"decoder\"").unwrap();
    let mut broken_decoder = original.clone();
    broken_decoder.insert(decoder_at + "\"decoder\": {".len(), '\u{1}');
    for (case, text) in [
        ("undefined special token", undefined.to_string()),
        ("syntax error in the decoder", broken_decoder),
    ] {
        let model = fixture_copy("bert", &home.path().join(case.replace(' ', "-")));
        std::fs::write(model.join("tokenizer.json"), text).unwrap();
        let line = failure_of(cli(home.path()), "embed", &model, &["hello"]);
        assert!(line.contains("tokenizer.json"), "{case}: {line}");
    }
}
