//! `cargo xtask matrix`: every skill on every backend against the fixtures,
//! through the release CLI, written to `docs/model-status.md` and its JSON
//! twin `docs/model-status.json`.
//!
//! A cell is `pass` (ids exact and values within 1e-4 of transformers'
//! reference), `fail` (ran, but wrong or erroring), `unsupported` (the skill
//! says it cannot run there, and why) or `unavailable` (the backend is not
//! on this machine, as `status` says). Nothing is ever filled in without
//! running.

use crate::ort_runtime::{self, OrtRuntime};
use crate::process::{cargo, output, root, sh};
use anyhow::{bail, Context};
use ipfs_accelerate_tests::{fixture_model, parity, reference, Check};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BACKENDS: &[&str] = &["cpu", "cuda", "ort", "openvino"];
const TOLERANCE: f64 = 1e-4;

/// One fixture of one skill.
struct Case {
    skill: String,
    fixture: String,
    check: Check,
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One case per model family, from the family table as the CLI reports it
/// (`status --json`'s `families`): a family added to the table is in the
/// matrix without touching this file.
fn cases(bin: &Path) -> anyhow::Result<Vec<Case>> {
    let out = Command::new(bin).args(["status", "--json"]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "status --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout)?;
    let families = status["families"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(
        !families.is_empty(),
        "status --json lists no model families"
    );
    let mut cases = Vec::new();
    for family in families {
        let field = |key: &str| family[key].as_str().unwrap_or_default().to_owned();
        let (skill, fixture) = (field("skill"), field("fixture"));
        let check = Check::for_family(
            &skill,
            family["media"].as_str(),
            family["decoding"].as_str(),
        )
        .with_context(|| format!("the matrix has no check for skill '{skill}' yet"))?;
        cases.push(Case {
            skill,
            fixture,
            check,
        });
    }
    Ok(cases)
}

/// The command line after `--json`, `--backend B` going in after the
/// subcommand.
fn arguments(check: Check, model: &Path, r: &Value) -> Vec<String> {
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let prompt = || {
        r["inputs"]["prompt"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let texts = || strings(&r["inputs"]["texts"]);
    let (command, mut rest): (&str, Vec<String>) = match check {
        Check::Embed => ("embed", texts()),
        Check::Generate => {
            let mut a = owned(&["--greedy", "--return-logits", "--max-new-tokens", "12"]);
            a.push(prompt());
            ("generate", a)
        }
        Check::Text2Text => {
            let mut a = owned(&["--greedy", "--return-logits", "--max-new-tokens", "12"]);
            a.push(texts().first().cloned().unwrap_or_default());
            ("text2text", a)
        }
        Check::Whisper => {
            let mut a = owned(&["--return-logits", "--max-new-tokens", "12"]);
            a.push(path(&model.join("input.wav")));
            ("transcribe", a)
        }
        Check::Ctc => (
            "transcribe",
            vec!["--return-logits".to_owned(), path(&model.join("input.wav"))],
        ),
        Check::Similarity { media } => {
            let input = Check::media_input(media);
            let mut a = vec![format!("--{media}"), path(&model.join(input))];
            a.extend(texts());
            ("similarity", a)
        }
        Check::Caption => {
            let mut a = owned(&[
                "--greedy",
                "--return-logits",
                "--max-new-tokens",
                "12",
                "--image",
            ]);
            a.push(path(&model.join("input.png")));
            a.push(prompt());
            ("caption", a)
        }
    };
    let mut args = vec![command.to_owned(), "--model".to_owned(), path(model)];
    args.append(&mut rest);
    args
}

/// The release CLI, built once.
fn cli_binary() -> anyhow::Result<PathBuf> {
    sh(cargo().args(["build", "--release", "-p", "ipfs-accelerate-cli"]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Ok(target.join("release/ipfs-accelerate"))
}

/// `(available, detail)` per backend name, from `status --json`.
fn availability(
    bin: &Path,
    home: &Path,
    ort: &OrtRuntime,
) -> anyhow::Result<Vec<(String, bool, String)>> {
    let out = output(
        ort.apply(&mut Command::new(bin))
            .args(["--cache-dir"])
            .arg(home)
            .args(["status", "--json"]),
    )?;
    let status: Value = serde_json::from_slice(&out.stdout).context("status --json is not JSON")?;
    Ok(status["backends"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap_or_default().to_owned(),
                        b["available"].as_bool().unwrap_or(false),
                        b["detail"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

fn run_cell(
    bin: &Path,
    home: &Path,
    ort: &OrtRuntime,
    case: &Case,
    backend: &str,
) -> anyhow::Result<Value> {
    let model = fixture_model(&case.fixture);
    let r = reference(&case.fixture);
    // `--backend` is each command's option: it goes after the subcommand.
    let args = arguments(case.check, &model, &r);
    let mut cmd = Command::new(bin);
    ort.apply(&mut cmd);
    cmd.arg("--cache-dir").arg(home).arg("--json").arg(&args[0]);
    cmd.args(["--backend", backend]).args(&args[1..]);
    let start = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("no error line")
            .trim_start_matches("error: ")
            .to_owned();
        let unsupported = ["unsupported", "not supported", "cannot run", "does not run"]
            .iter()
            .any(|w| line.contains(w));
        let status = if unsupported { "unsupported" } else { "fail" };
        return Ok(
            json!({"status": status, "detail": line, "max_abs_diff": null, "wall_ms": null}),
        );
    }
    let answer: Value = serde_json::from_slice(&out.stdout).context("answer is not JSON")?;
    if answer["backend"] != backend {
        return Ok(json!({
            "status": "fail",
            "detail": format!("asked for {backend}, ran on {}", answer["backend"]),
            "max_abs_diff": null, "wall_ms": wall_ms,
        }));
    }
    let (same, diff) = parity(case.check, &answer, &r, &case.fixture);
    let pass = same && diff <= TOLERANCE;
    let mut detail = match (same, diff <= TOLERANCE) {
        (true, true) => String::new(),
        (false, _) => "ids or text differ from transformers".to_owned(),
        (true, false) => format!("max abs diff {diff:.2e} over {TOLERANCE:e}"),
    };
    // Where the ONNX graph came from: the fixture's own, or our exporter.
    let graph_source = answer["files"].as_array().and_then(|files| {
        files
            .iter()
            .find(|f| f["file"].as_str().is_some_and(|n| n.starts_with("onnx/")))
            .and_then(|f| f["source"].as_str())
    });
    let origin = match graph_source {
        Some("export") => Some("graph exported on first use"),
        Some("cache") => Some("graph from the export cache"),
        _ => None,
    };
    if let Some(origin) = origin {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(origin);
    }
    Ok(json!({
        "status": if pass { "pass" } else { "fail" },
        "detail": detail,
        "max_abs_diff": diff,
        "wall_ms": wall_ms,
    }))
}

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    let bin = cli_binary()?;
    let home = std::env::temp_dir().join(format!("ipfs-accelerate-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&home)?;
    // The ort/openvino columns need the runtime `cargo xtask setup-ort` fetches.
    let ort = ort_runtime::install()?;
    let available = availability(&bin, &home, &ort)?;
    let mut rows = Vec::new();
    for case in cases(&bin)? {
        let mut cells = serde_json::Map::new();
        for &backend in BACKENDS {
            let cell = match available.iter().find(|(name, _, _)| name == backend) {
                Some((_, false, detail)) => {
                    json!({"status": "unavailable", "detail": detail, "max_abs_diff": null, "wall_ms": null})
                }
                None => bail!("status --json does not list backend {backend}"),
                Some(_) => run_cell(&bin, &home, &ort, &case, backend)?,
            };
            eprintln!("{:<12} {:<8} {}", case.fixture, backend, cell["status"]);
            cells.insert(backend.to_owned(), cell);
        }
        rows.push(json!({"skill": case.skill, "fixture": case.fixture, "backends": cells}));
    }
    let _ = std::fs::remove_dir_all(&home);
    // Paths under this checkout are written relative to it.
    let here = format!("{}/", root().display());
    let available: Vec<(String, bool, String)> = available
        .into_iter()
        .map(|(n, a, d)| (n, a, d.replace(&here, "")))
        .collect();
    let report = json!({
        "generator": "cargo xtask matrix",
        "tolerance": TOLERANCE,
        "backends": available.iter().map(|(n, a, d)| json!({"name": n, "available": a, "detail": d})).collect::<Vec<_>>(),
        "rows": rows,
    });
    let docs = root().join("docs");
    std::fs::write(
        docs.join("model-status.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(docs.join("model-status.md"), markdown(&report))?;
    eprintln!("wrote docs/model-status.md and docs/model-status.json");
    Ok(())
}

fn markdown(report: &Value) -> String {
    let mut s = String::from(
        "# Model status\n\nWritten by `cargo xtask matrix` (do not edit by hand): every skill's \
         fixture on every backend, through the release CLI, against the outputs transformers \
         gave (`fixtures/models/*/reference.json`). `pass`: greedy ids / text exact and values \
         within 1e-4 (the largest difference is shown); `fail`: ran but differs or errored; \
         `unsupported`: the skill says it cannot run there and why; `unavailable`: the backend \
         is not on the machine that wrote this file. Times are the whole command's wall time \
         (process start, model load and one request) on that machine; on `ort` / `openvino`, \
         a fixture that ships no ONNX graph is exported on first use (its time included) and \
         the cell says so.\n\n",
    );
    s.push_str("| skill | fixture |");
    for b in BACKENDS {
        s.push_str(&format!(" {b} |"));
    }
    s.push_str("\n| --- | --- |");
    for _ in BACKENDS {
        s.push_str(" --- |");
    }
    s.push('\n');
    for row in report["rows"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} |",
            row["skill"].as_str().unwrap_or_default(),
            row["fixture"].as_str().unwrap_or_default()
        ));
        for b in BACKENDS {
            let cell = &row["backends"][*b];
            let status = cell["status"].as_str().unwrap_or("?");
            let text = match status {
                "pass" => {
                    let mut text = format!(
                        "pass ({:.1e}, {:.0} ms",
                        cell["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
                        cell["wall_ms"].as_f64().unwrap_or(f64::NAN)
                    );
                    if let Some(detail) = cell["detail"].as_str().filter(|d| !d.is_empty()) {
                        text.push_str(&format!("; {detail}"));
                    }
                    text.push(')');
                    text
                }
                "unavailable" => "unavailable".to_owned(),
                // Skills phrase it "unsupported on ort: why": keep the why.
                other => format!(
                    "{other}: {}",
                    strip_status(other, cell["detail"].as_str().unwrap_or_default())
                        .replace('|', "\\|")
                ),
            };
            s.push_str(&format!(" {text} |"));
        }
        s.push('\n');
    }
    s.push_str("\nBackends on that machine:\n\n");
    for b in report["backends"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "- `{}`: {} — {}\n",
            b["name"].as_str().unwrap_or_default(),
            if b["available"].as_bool().unwrap_or(false) {
                "available"
            } else {
                "unavailable"
            },
            b["detail"].as_str().unwrap_or_default()
        ));
    }
    s
}

/// `detail` without a leading "`status` on <backend>: " the skill already
/// wrote, so a cell does not say "unsupported" twice.
fn strip_status<'a>(status: &str, detail: &'a str) -> &'a str {
    match detail
        .strip_prefix(status)
        .and_then(|rest| rest.strip_prefix(" on "))
    {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, why)| why),
        None => detail,
    }
}
