//! `ipfs-accelerate serve` run as a child process, and an HTTP client for
//! it: shared by the command-line tests and the load bench.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed when dropped.
#[derive(Debug)]
pub struct Server {
    /// The server process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns error statuses as answers, with a 60 s
/// timeout.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Server {
    /// Runs `cmd` (the binary in `home`, e.g. `common::cli(home.path())`)
    /// as `serve --addr 127.0.0.1:0 --model MODEL EXTRA...`, and waits
    /// until `/health` answers 200 (at most 60 s). The server owns `home`.
    pub fn start(mut cmd: Command, home: tempfile::TempDir, model: &Path, extra: &[&str]) -> Self {
        let mut child = cmd
            .args(["serve", "--addr", "127.0.0.1:0", "--model"])
            .arg(model)
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("server printed its address")
                .expect("stderr is readable");
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
            let (status, _) = server.get("/health");
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "server never became healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut resp = agent()
            .get(&format!("{}{path}", self.base))
            .call()
            .expect("GET answered");
        let body = resp.body_mut().read_to_string().expect("a text body");
        (resp.status().as_u16(), body)
    }

    /// `POST path` with a JSON body: status and JSON answer.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_with(path, body, None)
    }

    /// `POST path` with a JSON body and, when given, a bearer token.
    pub fn post_with(&self, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = agent()
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.send(body).expect("POST answered");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().expect("a text body");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status} answered non-JSON ({e}): {text}"));
        (status, value)
    }

    /// `POST path` with the JSON `body`, expecting a JSON error with
    /// status `want`; returns the error body.
    pub fn post_error(&self, path: &str, body: &Value, want: u16) -> Value {
        let (status, answer) = self.post(path, &body.to_string());
        assert_json_error(status, &answer, want);
        answer
    }

    /// `POST path` with `body` of `content_type`: status and text answer.
    pub fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let mut resp = agent()
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .send(body)
            .expect("POST answered");
        let status = resp.status().as_u16();
        (
            status,
            resp.body_mut().read_to_string().expect("a text body"),
        )
    }

    /// `POST path` with a JSON body asking for a stream: the status and,
    /// for a 200, the server-sent events' JSON values (checked to end with
    /// `[DONE]`, which is not returned); for an error, the error body.
    pub fn post_events(&self, path: &str, body: &Value) -> (u16, Vec<Value>) {
        let (status, text) = self.post_bytes(path, "application/json", body.to_string().as_bytes());
        if status != 200 {
            let error = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status} answered non-JSON ({e}): {text}"));
            return (status, vec![error]);
        }
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(
            data.last(),
            Some(&"[DONE]"),
            "the stream ends with [DONE]: {text}"
        );
        let events = data[..data.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
            .collect();
        (status, events)
    }

    /// Sends SIGTERM, waits for the server to exit (successfully; at most
    /// 30 s) and returns how long that took.
    pub fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success(), "kill -TERM failed");
        loop {
            if let Some(exit) = self.child.try_wait().expect("the server's status") {
                assert!(exit.success(), "exit {exit:?}");
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let (status, metrics) = self.get("/metrics");
        assert_eq!(status, 200, "{metrics}");
        metrics
    }
}

/// Asserts a JSON error answer: status `want`, `error.message`, and
/// `error.code` equal to the status.
pub fn assert_json_error(status: u16, body: &Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body["error"]["code"], want);
}

/// The resident memory of process `pid` in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The value of the Prometheus line that starts with `line_prefix` (0 when
/// there is none).
pub fn metric(metrics: &str, line_prefix: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .map_or(0, |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{line_prefix}: {e}"))
        })
}

/// A file part of a form: field name, file name, bytes.
pub type FormFile<'a> = (&'a str, &'a str, &'a [u8]);

/// A `multipart/form-data` body as HTTP clients upload a form: the text
/// `fields`, then the file part `file`. Returns the content type (with its
/// boundary) and the body.
pub fn multipart(fields: &[(&str, &str)], file: Option<FormFile<'_>>) -> (String, Vec<u8>) {
    let boundary = "ipfsAccelerateTestBoundary7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, filename, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
