//! `cargo xtask bench models [--only FAMILY] [--backend B]`: every family
//! with an ONNX path at real size, on every backend here, beside PyTorch
//! eager on the same weights, inputs and thread count, in one run.
//!
//! Models: real-size random weights with the published architecture
//! (`xtask/scripts/bench_models.py` says which), built once under
//! `target/bench-models/`; bert is the real all-MiniLM-L6-v2. Requests
//! (one per family, the same on every engine):
//!
//! - bert: 8 sentences embedded (mean pooling, L2), sentences/s;
//! - gpt2, opt, llama: a short prompt, 32 new tokens greedy, tokens/s;
//! - t5: one input, 32 new tokens greedy, tokens/s;
//! - whisper, wav2vec2: a 10 s recording (Whisper: 32 new tokens),
//!   real-time factor;
//! - clip: the fixture's image against 8 texts, queries/s;
//! - clap: a 10 s recording at 48 kHz (the speech clip, resampled once by
//!   the script so both engines read the same samples) against 8 texts,
//!   queries/s;
//! - xclip: an 8-frame video (made by the script from the CLIP fixture's
//!   image) against 8 texts, queries/s.
//!
//! LLaVA is not benchmarked at real size: the smallest published LLaVA
//! (7B) is 28 GB in float32, more than this machine's memory and over the
//! exporter's 2 GiB single-file limit.
//!
//! Each engine runs in a process of its own (the `models` bench of the
//! skills crate for ours, the script for PyTorch): one warm-up request, then
//! three timed; the latency is their median, the peak memory the process's
//! high-water mark. For `ort` / `openvino` the graphs are exported first,
//! in a separate timed process (the one-time export cost), into a cache the
//! request processes then read. The answers are checked against PyTorch's:
//! embeddings and CTC logits within 1e-3, the first 8 generated ids equal;
//! a row whose answer differs fails the bench.
//!
//! Writes `target/bench/models.json` and prints the table recorded in
//! docs/benchmarks.md.

use crate::ort_runtime;
use crate::process::{cargo, output, root, sh};
use crate::python_clients;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const THREADS: &str = "2";
const NEW_TOKENS: u64 = 32;
const AUDIO_SECONDS: u64 = 10;
const REPEATS: u64 = 3;
const CHECKED_IDS: usize = 8;
const TOLERANCE: f64 = 1e-3;

/// The families benchmarked, in the family table's order.
const FAMILIES: &[&str] = &[
    "bert", "gpt2", "opt", "llama", "t5", "whisper", "wav2vec2", "clip", "clap", "xclip",
];
const BACKENDS: &[&str] = &["cpu", "ort", "openvino"];

/// What a family's request measures.
fn unit(family: &str) -> &'static str {
    match family {
        "bert" => "sentences/s",
        "clip" | "clap" | "xclip" => "queries/s",
        "whisper" | "wav2vec2" => "real-time factor",
        _ => "tokens/s",
    }
}

fn architecture(family: &str) -> &'static str {
    match family {
        "bert" => "all-MiniLM-L6-v2 (real weights)",
        "gpt2" => "gpt2 124M",
        "opt" => "opt-125m",
        "llama" => "SmolLM2-135M's config",
        "t5" => "t5-small",
        "whisper" => "whisper-tiny (tiny.en vocabulary)",
        "clip" => "clip-vit-base-patch32",
        "clap" => "ClapConfig() (HTSAT-base unfused + RoBERTa-base)",
        "xclip" => "xclip-base-patch32 (8 frames)",
        _ => "wav2vec2-base",
    }
}

fn request(family: &str, audio: &Path, media: &Path) -> Value {
    let texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.",
        "A monkey is playing drums.",
    ];
    json!({
        "texts": if family == "t5" {
            vec!["translate English to German: The house is wonderful."]
        } else {
            texts.to_vec()
        },
        "prompt": "The history of computing began",
        "new_tokens": NEW_TOKENS,
        "audio": audio,
        "audio_48k": media.join("speech-10s-48k.wav"),
        "video": media.join("video-8"),
        "image": root().join("fixtures/models/clip/input.png"),
        "repeats": REPEATS,
    })
}

struct Args {
    only: Option<String>,
    backend: Option<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Args> {
    let mut out = Args {
        only: None,
        backend: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => out.only = Some(it.next().context("--only FAMILY")?.clone()),
            "--backend" => out.backend = Some(it.next().context("--backend B")?.clone()),
            other => bail!("unknown argument {other} (--only FAMILY, --backend B)"),
        }
    }
    if let Some(f) = &out.only {
        anyhow::ensure!(
            FAMILIES.contains(&f.as_str()),
            "--only {f}: one of {}",
            FAMILIES.join(", ")
        );
    }
    if let Some(b) = &out.backend {
        anyhow::ensure!(
            BACKENDS.contains(&b.as_str()),
            "--backend {b}: one of {}",
            BACKENDS.join(", ")
        );
    }
    Ok(out)
}

/// The `models` bench's executable, built in release.
fn bench_binary() -> anyhow::Result<PathBuf> {
    let out = output(cargo().args([
        "bench",
        "-p",
        "ipfs-accelerate-skills",
        "--bench",
        "models",
        "--no-run",
        "--message-format=json",
    ]))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["target"]["name"] == "models")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo bench --no-run named no `models` executable")
}

fn read(path: &Path) -> anyhow::Result<Value> {
    serde_json::from_str(&std::fs::read_to_string(path)?)
        .with_context(|| format!("{} is not JSON", path.display()))
}

fn model_dir(family: &str, python: &Path) -> anyhow::Result<PathBuf> {
    if family == "bert" {
        return crate::models::minilm();
    }
    let name = if family == "whisper" {
        "whisper-tiny-en-random".to_owned()
    } else {
        format!("{family}-random")
    };
    let dir = root().join("target/bench-models").join(name);
    sh(Command::new(python)
        .arg(root().join("xtask/scripts/bench_models.py"))
        .args(["build", family])
        .arg(&dir))?;
    Ok(dir)
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => n.as_f64().into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Whether our answer agrees with PyTorch's, and how (for the table).
fn check(family: &str, ours: &Value, theirs: &Value) -> (bool, String) {
    let max_abs = |a: &Value, b: &Value| {
        let (a, b) = (floats(a), floats(b));
        if a.len() != b.len() {
            return f64::INFINITY;
        }
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    match family {
        "bert" => {
            let d = max_abs(&ours["embeddings"], &theirs["embeddings"]);
            (d <= TOLERANCE, format!("embeddings max |Δ| {d:.1e}"))
        }
        "clip" | "clap" | "xclip" => {
            let d = max_abs(&ours["logits"], &theirs["logits"]);
            (d <= TOLERANCE, format!("logits max |Δ| {d:.1e}"))
        }
        "wav2vec2" => {
            // Ours is `[frames, vocab]` under outputs.logits.
            let d = max_abs(&ours["outputs"]["logits"]["data"], &theirs["logits"]);
            (d <= TOLERANCE, format!("logits max |Δ| {d:.1e}"))
        }
        _ => {
            let (a, b) = (ids(&ours["token_ids"]), ids(&theirs["token_ids"]));
            let equal = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            let need = CHECKED_IDS.min(b.len());
            (
                equal >= need && !b.is_empty(),
                format!("{equal} of {} ids equal from the start", b.len()),
            )
        }
    }
}

/// Throughput in the family's unit from a latency.
fn throughput(family: &str, latency: f64, answer: &Value, r: &Value) -> f64 {
    match family {
        "bert" => r["texts"].as_array().map_or(0, Vec::len) as f64 / latency,
        // One query: an image against the texts.
        "clip" | "clap" | "xclip" => 1.0 / latency,
        "whisper" | "wav2vec2" => latency / AUDIO_SECONDS as f64,
        _ => ids(&answer["token_ids"]).len() as f64 / latency,
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args = parse(args)?;
    let python = python_clients::torch()?;
    let ort = ort_runtime::install()?;
    let bin = bench_binary()?;
    let out_dir = root().join("target/bench/models");
    std::fs::create_dir_all(&out_dir)?;
    let media = root().join("target/bench-models");
    let audio = media.join("speech-10s.wav");
    sh(Command::new(&python)
        .arg(root().join("xtask/scripts/bench_models.py"))
        .arg("audio")
        .arg(&audio)
        .arg(AUDIO_SECONDS.to_string()))?;
    // CLAP's 48 kHz recording and X-CLIP's video.
    sh(Command::new(&python)
        .arg(root().join("xtask/scripts/bench_models.py"))
        .arg("media")
        .arg(&audio)
        .arg(&media))?;

    let mut families = Vec::new();
    let mut versions = Value::Null;
    for &family in FAMILIES {
        if args.only.as_deref().is_some_and(|f| f != family) {
            continue;
        }
        eprintln!("bench models: {family}");
        let model = model_dir(family, &python)?;
        let work = out_dir.join(family);
        if work.exists() {
            std::fs::remove_dir_all(&work)?;
        }
        std::fs::create_dir_all(&work)?;
        let r = request(family, &audio, &media);
        let request_file = work.join("request.json");
        std::fs::write(&request_file, serde_json::to_vec_pretty(&r)?)?;
        let weights_bytes: u64 = std::fs::read_dir(&model)?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();

        // PyTorch eager, the reference.
        let torch_out = work.join("pytorch.json");
        sh(Command::new(&python)
            .arg(root().join("xtask/scripts/bench_models.py"))
            .args(["run", family])
            .arg(&model)
            .arg(&request_file)
            .arg(&torch_out)
            .arg(THREADS))?;
        let torch = read(&torch_out)?;
        versions = json!({ "torch": torch["torch"], "transformers": torch["transformers"] });
        let torch_latency = torch["median_s"].as_f64().context("pytorch median_s")?;

        let backends: Vec<&str> = BACKENDS
            .iter()
            .copied()
            .filter(|b| args.backend.as_deref().is_none_or(|x| x == *b))
            .collect();
        let cache = work.join("cache");
        let mut export = Value::Null;
        if backends.iter().any(|b| *b != "cpu") {
            let export_out = work.join("export.json");
            sh(ort
                .apply(&mut Command::new(&bin))
                .arg("export")
                .arg(&model)
                .arg(&cache)
                .arg(&export_out))?;
            export = read(&export_out)?;
        }
        let mut rows = Vec::new();
        for backend in backends {
            let row_out = work.join(format!("{backend}.json"));
            sh(ort
                .apply(&mut Command::new(&bin))
                .env("RAYON_NUM_THREADS", THREADS)
                .env("IPFS_ACCELERATE_ORT_THREADS", THREADS)
                .env("HF_HUB_OFFLINE", "1")
                .args(["request", family, backend])
                .arg(&model)
                .arg(&cache)
                .arg(&request_file)
                .arg(&row_out))?;
            let row = read(&row_out)?;
            if let Some(error) = row["error"].as_str() {
                rows.push(json!({ "backend": backend, "status": "unavailable", "detail": error }));
                continue;
            }
            if row["backend"] != backend {
                bail!("{family}: asked for {backend}, ran on {}", row["backend"]);
            }
            let latency = row["median_s"].as_f64().context("median_s")?;
            let (ok, how) = check(family, &row["answer"], &torch["answer"]);
            if !ok {
                bail!("{family} on {backend}: the answer differs from PyTorch's ({how})");
            }
            rows.push(json!({
                "backend": backend,
                "status": "ok",
                "latency_s": latency,
                "load_s": row["load_s"],
                "throughput": throughput(family, latency, &row["answer"], &r),
                "unit": unit(family),
                "peak_rss_mib": row["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                "speed_vs_pytorch": torch_latency / latency,
                "check": how,
            }));
        }
        rows.push(json!({
            "backend": "pytorch",
            "status": "ok",
            "latency_s": torch_latency,
            "load_s": torch["load_s"],
            "throughput": throughput(family, torch_latency, &torch["answer"], &r),
            "unit": unit(family),
            "peak_rss_mib": torch["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            "speed_vs_pytorch": 1.0,
            "check": "reference",
        }));
        families.push(json!({
            "family": family,
            "architecture": architecture(family),
            "weights_bytes": weights_bytes,
            "request": r,
            "export": export,
            "rows": rows,
        }));
    }
    let report = json!({
        "threads": 2,
        "pytorch": versions,
        "families": families,
    });
    let path = root().join("target/bench/models.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    print_table(&report);
    eprintln!("written to {}", path.display());
    Ok(())
}

fn print_table(report: &Value) {
    eprintln!(
        "\n| family | weights (MiB) | export (s) | backend | latency (ms) | throughput | peak RSS (MiB) | speed vs PyTorch |"
    );
    eprintln!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for f in report["families"].as_array().into_iter().flatten() {
        let export = f["export"]["export_s"]
            .as_f64()
            .map_or("–".to_owned(), |s| format!("{s:.1}"));
        for row in f["rows"].as_array().into_iter().flatten() {
            if row["status"] != "ok" {
                eprintln!(
                    "| {} | | | {} | {} | | | |",
                    f["family"].as_str().unwrap_or_default(),
                    row["backend"].as_str().unwrap_or_default(),
                    row["detail"].as_str().unwrap_or_default()
                );
                continue;
            }
            eprintln!(
                "| {} | {:.0} | {} | {} | {:.0} | {:.3} {} | {:.0} | {:.2}× |",
                f["family"].as_str().unwrap_or_default(),
                f["weights_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
                export,
                row["backend"].as_str().unwrap_or_default(),
                row["latency_s"].as_f64().unwrap_or(0.0) * 1e3,
                row["throughput"].as_f64().unwrap_or(0.0),
                row["unit"].as_str().unwrap_or_default(),
                row["peak_rss_mib"].as_f64().unwrap_or(0.0),
                row["speed_vs_pytorch"].as_f64().unwrap_or(0.0),
            );
        }
    }
}
