//! Running the `ipfs-accelerate` binary in a controlled environment.
//!
//! Only the command-line crate's tests and benches know where the binary is
//! (`CARGO_BIN_EXE_ipfs-accelerate`): they build the base [`Command`] with
//! [`command`] (their `common::cli(home)`), and every helper here takes such
//! a command, so one helper serves a plain run and one with extra
//! environment (ONNX Runtime, an IPFS node, gate variables).

use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// The binary `bin` with a clean environment: only PATH, HOME pointing at
/// the temp home `home`, our cache at `home/cache`, an empty Hub cache at
/// `home/hub`, the Hub offline, no IPFS node.
pub fn command(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("IPFS_ACCELERATE_CACHE", home.join("cache"))
        .env("HF_HUB_CACHE", home.join("hub"))
        .env("HF_HUB_OFFLINE", "1")
        .env("IPFS_API_URL", "http://127.0.0.1:9");
    cmd
}

/// Runs and returns the output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

/// Parses the single JSON object on stdout of a successful run.
pub fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).expect("UTF-8 on stdout");
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(stdout.trim()).expect("stdout is JSON")
}

/// The entry for backend `name` in a `status --json` answer.
pub fn status_backend(status: &Value, name: &str) -> Value {
    status["backends"]
        .as_array()
        .and_then(|backends| backends.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("status lists no backend {name}: {status}"))
        .clone()
}

/// Runs `cmd`, expecting success, and parses its one JSON answer.
pub fn json_of(cmd: &mut Command) -> Value {
    json_ok(&run(cmd))
}

/// Asserts a clean failure: non-zero exit, one line on stderr starting with
/// `error:`, no panic; returns that line.
pub fn one_line_failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got success");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Log lines (warnings about fallbacks, ...) may precede the error.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_log_line(l))
        .collect();
    assert_eq!(lines.len(), 1, "one-line error expected, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    lines[0].to_owned()
}

/// Runs `cmd`, expecting a clean failure, and returns its one error line.
pub fn failure(cmd: &mut Command) -> String {
    one_line_failure(&run(cmd))
}

/// Runs `COMMAND --json --model MODEL EXTRA...`, expecting a clean failure,
/// and returns its one error line.
pub fn failure_of(mut cmd: Command, command: &str, model: &Path, extra: &[&str]) -> String {
    failure(
        cmd.args([command, "--json", "--model"])
            .arg(model)
            .args(extra),
    )
}

/// Runs `cmd`, expecting success, and returns what it printed on stdout
/// (a streamed answer).
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 on stdout")
}

/// A `tracing` line: `2026-01-01T00:00:00.000000Z  WARN ...`.
fn is_log_line(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let stamp = parts.next().unwrap_or("");
    let level = parts.next().unwrap_or("");
    stamp.len() > 20
        && stamp.as_bytes()[4] == b'-'
        && stamp.ends_with('Z')
        && matches!(level, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE")
}

/// `cmd` with the ONNX Runtime library (and the OpenVINO plugin when
/// `openvino`) from this process's environment; `None` (after reporting the
/// skip of `test`) when they are not installed or this processor is not one
/// the OpenVINO provider serves.
pub fn with_ort(mut cmd: Command, test: &str, openvino: bool) -> Option<Command> {
    if crate::ort_missing_skip(test, openvino) {
        return None;
    }
    cmd.env("ORT_DYLIB_PATH", crate::ort_dylib()?);
    if openvino {
        cmd.env("IPFS_ACCELERATE_OPENVINO_EP", crate::openvino_ep()?);
    }
    Some(cmd)
}

/// `cmd` talking to the IPFS node at `api` (a host of the shared node).
pub fn with_ipfs(mut cmd: Command, api: &str) -> Command {
    cmd.env("IPFS_API_URL", api);
    cmd
}

/// `embed --json EXTRA... --model MODEL TEXTS...`, its answer.
pub fn embed<T: AsRef<OsStr>>(
    mut cmd: Command,
    model: impl AsRef<OsStr>,
    texts: &[T],
    extra: &[&str],
) -> Value {
    json_of(
        cmd.args(["embed", "--json"])
            .args(extra)
            .arg("--model")
            .arg(model)
            .args(texts),
    )
}

/// The embeddings of an `embed --json` answer.
pub fn embeddings(answer: &Value) -> Vec<Vec<f32>> {
    serde_json::from_value(answer["embeddings"].clone()).expect("embeddings")
}

/// `COMMAND --greedy --json --max-new-tokens N EXTRA... --model MODEL
/// TEXT` (`generate` or `text2text`), its answer.
pub fn greedy(
    mut cmd: Command,
    command: &str,
    model: &Path,
    text: &str,
    new_tokens: usize,
    extra: &[&str],
) -> Value {
    json_of(
        cmd.args([command, "--greedy", "--json"])
            .args(["--max-new-tokens", &new_tokens.to_string()])
            .args(extra)
            .arg("--model")
            .arg(model)
            .arg(text),
    )
}

/// `COMMAND --greedy --max-new-tokens N --model MODEL TEXT` without
/// `--json` (`generate`, `text2text`): what it streamed to stdout.
pub fn streamed(
    mut cmd: Command,
    command: &str,
    model: &Path,
    text: &str,
    new_tokens: usize,
) -> String {
    stdout_of(
        cmd.args([command, "--greedy"])
            .args(["--max-new-tokens", &new_tokens.to_string()])
            .arg("--model")
            .arg(model)
            .arg(text),
    )
}

/// Asserts `COMMAND --json --model MODEL` (`generate`, `text2text`)
/// refuses an empty prompt and zero new tokens, in one line each.
pub fn assert_refuses_empty_prompt_and_no_tokens(
    cli: impl Fn() -> Command,
    command: &str,
    model: &Path,
) {
    let err = failure_of(cli(), command, model, &["--max-new-tokens", "4", ""]);
    assert!(err.contains("empty"), "{err}");
    let err = failure_of(cli(), command, model, &["--max-new-tokens", "0", "hello"]);
    assert!(err.contains("at least 1"), "{err}");
}

/// `transcribe --json EXTRA... --model MODEL AUDIO`, its answer.
pub fn transcribe(mut cmd: Command, model: &Path, audio: &Path, extra: &[&str]) -> Value {
    json_of(
        cmd.args(["transcribe", "--json"])
            .args(extra)
            .arg("--model")
            .arg(model)
            .arg(audio),
    )
}

/// `caption --json EXTRA... --model MODEL --image MODEL/input.png PROMPT`,
/// its answer.
pub fn caption(mut cmd: Command, model: &Path, prompt: &str, extra: &[&str]) -> Value {
    json_of(
        cmd.args(["caption", "--json"])
            .args(extra)
            .arg("--model")
            .arg(model)
            .arg("--image")
            .arg(model.join("input.png"))
            .arg(prompt),
    )
}

/// `similarity --json --return-inputs --return-embeddings EXTRA... --model
/// MODEL MEDIA_FLAG MEDIA TEXTS...` (`media` is e.g. `("--image", path)`),
/// its answer.
pub fn similarity<T: AsRef<OsStr>>(
    mut cmd: Command,
    model: &Path,
    (flag, media): (&str, &Path),
    texts: &[T],
    extra: &[&str],
) -> Value {
    json_of(
        cmd.args(["similarity", "--json", "--return-inputs"])
            .arg("--return-embeddings")
            .args(extra)
            .arg("--model")
            .arg(model)
            .arg(flag)
            .arg(media)
            .args(texts),
    )
}

/// Runs `similarity` on `fixture`'s texts against `media` (e.g.
/// `("--image", path)`) and checks the answer against the reference
/// ([`crate::assert_similarity_reference`], `input` naming the preprocessed
/// media), the backend (`cpu`) and the model (the fixture's folder).
/// Returns the five differences.
pub fn check_similarity_fixture(
    cmd: Command,
    fixture: &crate::Fixture,
    (flag, media): (&str, &Path),
    input: &str,
) -> [f32; 5] {
    let answer = similarity(cmd, &fixture.dir, (flag, media), &fixture.texts(), &[]);
    let kind = flag.trim_start_matches("--");
    let diffs = crate::assert_similarity_reference(&fixture.name, fixture, &answer, input, kind);
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], fixture.dir.to_str().expect("UTF-8 path"));
    diffs
}

/// `similarity --json --model MODEL MEDIA_FLAG MEDIA TEXT`, expecting a
/// clean failure; its one error line.
pub fn similarity_failure(
    cmd: Command,
    model: &Path,
    (flag, media): (&str, &Path),
    text: &str,
) -> String {
    let media = media.to_str().expect("UTF-8 path");
    failure_of(cmd, "similarity", model, &[flag, media, text])
}

/// `cache ARGS... --json`, its answer (`cache ls`, `cache verify`, ...).
pub fn cache(mut cmd: Command, args: &[&str]) -> Value {
    json_of(cmd.arg("cache").args(args).arg("--json"))
}

/// `cache import --json --as ID DIR`, its answer.
pub fn cache_import(mut cmd: Command, id: &str, dir: &Path) -> Value {
    json_of(cmd.args(["cache", "import", "--json", "--as", id]).arg(dir))
}
