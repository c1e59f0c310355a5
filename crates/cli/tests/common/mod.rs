//! Running the built binary in a controlled environment.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use ipfs_accelerate_tests::*;

/// The binary under test with a clean environment: only PATH, HOME pointing
/// at a temp home, our cache at `cache`, an empty Hub cache, Hub offline.
pub fn cli(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"));
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
pub fn json_ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
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

/// Runs `COMMAND --json --model MODEL EXTRA...`, expecting a clean failure,
/// and returns its one error line.
pub fn failure_of(home: &Path, command: &str, model: &Path, extra: &[&str]) -> String {
    one_line_failure(&run(cli(home)
        .args([command, "--json", "--model"])
        .arg(model)
        .args(extra)))
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

/// The bert fixture's texts and reference embeddings.
pub fn bert_reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let reference = reference("bert");
    let texts = reference["inputs"]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (texts, reference_rows(&reference["outputs"]["embeddings"]))
}

/// The embeddings of an `embed --json` answer.
pub fn embeddings(answer: &serde_json::Value) -> Vec<Vec<f32>> {
    serde_json::from_value(answer["embeddings"].clone()).unwrap()
}

/// A writable copy of a fixture model.
pub fn fixture_copy(name: &str, into: &Path) -> PathBuf {
    let dir = into.join(name);
    copy_dir(&fixture_model(name), &dir).unwrap();
    dir
}

/// Largest absolute difference between two float lists of equal length.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

/// A JSON list of numbers as f32.
pub fn f32_list(value: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(value.clone()).unwrap()
}

/// A JSON list of ids.
pub fn id_list(value: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(value.clone()).unwrap()
}

/// Runs `generate --greedy --json --return-logits` and returns the answer.
pub fn generate_greedy(
    home: &Path,
    model: &Path,
    prompt: &str,
    new_tokens: usize,
) -> serde_json::Value {
    let out = run(cli(home)
        .args([
            "generate",
            "--greedy",
            "--json",
            "--return-logits",
            "--model",
        ])
        .arg(model)
        .args(["--max-new-tokens", &new_tokens.to_string(), prompt]));
    json_ok(&out)
}

/// The variant fixtures (`fixtures/models/variants/<prefix>*`), sorted.
pub fn variant_dirs(prefix: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("models/variants"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no variant fixtures named {prefix}*");
    dirs
}
