//! `cargo xtask bench models [--only FAMILY] [--backend B] [--profile P]
//! [--out FILE]`: every family at real size, on every backend here, beside
//! PyTorch eager on the same weights, inputs and thread count, in one run.
//!
//! Models: real-size random weights with the published architecture
//! (`xtask/scripts/bench_models.py` says which), built once under
//! `target/bench-models/`; bert is the real all-MiniLM-L6-v2. Requests
//! (one per family, the same on every engine):
//!
//! - bert: 8 sentences embedded (mean pooling, L2), sentences/s;
//! - gpt2, opt, llama, llama-1b: a short prompt, 32 new tokens greedy,
//!   tokens/s;
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
//! - llava, llava_next: the CLIP fixture's image and the LLaVA fixture's
//!   prompt, 8 new tokens greedy, tokens/s (warm-up and two timed
//!   requests). The published LLaVA checkpoints (7B) are 28 GB in float32,
//!   more than this machine's memory, so the language model is a 1.1B
//!   LLaMA (TinyLlama-1.1B's config) under llava-1.5's vision tower
//!   (CLIP ViT-L/14 at 336 px) and projector; at 5.6 GB it is over the
//!   exporter's 2 GiB single-file limit, so its ONNX rows say so.
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
//! Writes `target/bench/models.json` (or `--out`; families of an earlier
//! run that this one did not measure are kept, so `--only` runs add up),
//! the chart of every measured family's speed against PyTorch next to it
//! (`models.svg`), and prints the table recorded in docs/benchmarks.md,
//! with the seeds' own CPU figures beside ours (theirs, other hardware).
//! `--chart-only` redraws the table and chart from the JSON without
//! measuring. `--profile dev` builds our side unoptimised: for checking the
//! pipeline (the test of the JSON), not for figures.

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
    "bert-tiny",
    "bert",
    "gpt2",
    "opt",
    "llama",
    "llama-1b",
    "t5-tiny",
    "t5",
    "whisper",
    "wav2vec2",
    "clip",
    "clap",
    "xclip",
    "llava",
    "llava_next",
];

/// The seeds' own CPU figures (ipfs_accelerate_py's development guide,
/// "Performance Test Results (June 15, 2025)"): theirs, on other hardware
/// with other inputs, shown for reference only.
fn seeds_cpu(family: &str) -> &'static str {
    match family {
        "bert-tiny" => "4.3 ms/sentence, 24 MB",
        "bert" => "5.0 ms/sentence, 100 MB",
        "gpt2" => "20 tokens/s, 510 MB",
        "opt" => "38 tokens/s, 275 MB",
        "t5-tiny" => "32 tokens/s, 90 MB",
        "whisper" => "14× real time, 175 MB",
        "wav2vec2" => "20× real time, 62 MB (wav2vec2-tiny)",
        "clip" => "310 ms/query, 440 MB",
        "clap" => "310 ms/query, 470 MB",
        "xclip" => "410 ms/frame, 405 MB",
        "llava" => "35 tokens/s, 2.55 GB",
        "llava_next" => "20 tokens/s, 3.95 GB",
        // Their LLAMA row is opt-125m; t5-small is not in their table.
        _ => "–",
    }
}

/// Frames in X-CLIP's video request.
const VIDEO_FRAMES: f64 = 8.0;

/// Our latency in the seeds' unit.
fn seeds_style(family: &str, latency: f64, throughput: f64, r: &Value) -> String {
    match family {
        "bert" | "bert-tiny" => {
            let n = r["texts"].as_array().map_or(1, Vec::len).max(1) as f64;
            format!("{:.1} ms/sentence", latency * 1e3 / n)
        }
        "clip" | "clap" => format!("{:.0} ms/query", latency * 1e3),
        "xclip" => format!("{:.0} ms/frame", latency * 1e3 / VIDEO_FRAMES),
        "whisper" | "wav2vec2" => format!("{:.1}× real time", 1.0 / throughput.max(1e-9)),
        _ => format!("{throughput:.1} tokens/s"),
    }
}
const BACKENDS: &[&str] = &["cpu", "ort", "openvino"];

/// What a family's request measures.
fn unit(family: &str) -> &'static str {
    match family {
        "bert" | "bert-tiny" => "sentences/s",
        "clip" | "clap" | "xclip" => "queries/s",
        "whisper" | "wav2vec2" => "real-time factor",
        _ => "tokens/s",
    }
}

fn architecture(family: &str) -> &'static str {
    match family {
        "bert-tiny" => "prajjwal1/bert-tiny (2 layers, 128 wide)",
        "bert" => "all-MiniLM-L6-v2 (real weights)",
        "gpt2" => "gpt2 124M",
        "opt" => "opt-125m",
        "llama" => "SmolLM2-135M's config",
        "llama-1b" => "TinyLlama-1.1B's config",
        "t5-tiny" => "google/t5-efficient-tiny",
        "t5" => "t5-small",
        "whisper" => "whisper-tiny (tiny.en vocabulary)",
        "clip" => "clip-vit-base-patch32",
        "clap" => "ClapConfig() (HTSAT-base unfused + RoBERTa-base)",
        "xclip" => "xclip-base-patch32 (8 frames)",
        "llava" => "llava-1.5's vision tower + TinyLlama-1.1B (a 7B does not fit)",
        "llava_next" => "llava-v1.6's vision tower and grid + TinyLlama-1.1B",
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
    let llava = family.starts_with("llava");
    json!({
        "image_prompt": "USER: <image>\nWhat is shown in this image? ASSISTANT:",
        "texts": if family.starts_with("t5") {
            vec!["translate English to German: The house is wonderful."]
        } else {
            texts.to_vec()
        },
        "prompt": "The history of computing began",
        "new_tokens": if llava { 8 } else { NEW_TOKENS },
        "audio": audio,
        "audio_48k": media.join("speech-10s-48k.wav"),
        "video": media.join("video-8"),
        "image": root().join("fixtures/models/clip/input.png"),
        "repeats": if llava { 2 } else { REPEATS },
    })
}

struct Args {
    only: Option<String>,
    backend: Option<String>,
    /// The cargo profile our side is built with (`bench`, or `dev`).
    profile: String,
    out: PathBuf,
    chart_only: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Args> {
    let mut out = Args {
        only: None,
        backend: None,
        profile: "bench".to_owned(),
        out: root().join("target/bench/models.json"),
        chart_only: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => out.only = Some(it.next().context("--only FAMILY")?.clone()),
            "--backend" => out.backend = Some(it.next().context("--backend B")?.clone()),
            "--profile" => out.profile = it.next().context("--profile P")?.clone(),
            "--out" => out.out = PathBuf::from(it.next().context("--out FILE")?),
            "--chart-only" => out.chart_only = true,
            other => bail!(
                "unknown argument {other} (--only FAMILY, --backend B, --profile P, --out FILE, --chart-only)"
            ),
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
fn bench_binary(profile: &str) -> anyhow::Result<PathBuf> {
    let out = output(cargo().args([
        "bench",
        "-p",
        "ipfs-accelerate-skills",
        "--bench",
        "models",
        // No family here runs on llama.cpp: not building it saves its
        // ten-minute CMake build (cargo would make one more for this
        // feature set).
        "--no-default-features",
        "--profile",
        profile,
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
        "bert" | "bert-tiny" => {
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
        "bert" | "bert-tiny" => r["texts"].as_array().map_or(0, Vec::len) as f64 / latency,
        // One query: an image against the texts.
        "clip" | "clap" | "xclip" => 1.0 / latency,
        "whisper" | "wav2vec2" => latency / AUDIO_SECONDS as f64,
        _ => ids(&answer["token_ids"]).len() as f64 / latency,
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args = parse(args)?;
    if args.chart_only {
        return chart_only(&args.out);
    }
    let python = python_clients::torch()?;
    let ort = ort_runtime::install()?;
    let bin = bench_binary(&args.profile)?;
    let out_dir = root().join("target/bench/models");
    std::fs::create_dir_all(&out_dir)?;
    let media = root().join("target/bench-models");
    // A fresh clone has no models yet: the recordings go in first.
    std::fs::create_dir_all(&media)?;
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
            if let (true, Some(error)) = (backend != "cpu", export["error"].as_str()) {
                let detail = format!("no ONNX graph: the export failed: {error}");
                rows.push(json!({ "backend": backend, "status": "unavailable", "detail": detail }));
                continue;
            }
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
            let rate = throughput(family, latency, &row["answer"], &r);
            rows.push(json!({
                "backend": backend,
                "status": "ok",
                "latency_s": latency,
                "load_s": row["load_s"],
                "throughput": rate,
                "seeds_style": seeds_style(family, latency, rate, &r),
                "unit": unit(family),
                "peak_rss_mib": row["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                "speed_vs_pytorch": torch_latency / latency,
                "check": how,
            }));
        }
        let torch_rate = throughput(family, torch_latency, &torch["answer"], &r);
        rows.push(json!({
            "backend": "pytorch",
            "status": "ok",
            "latency_s": torch_latency,
            "load_s": torch["load_s"],
            "throughput": torch_rate,
            "seeds_style": seeds_style(family, torch_latency, torch_rate, &r),
            "unit": unit(family),
            "peak_rss_mib": torch["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            "speed_vs_pytorch": 1.0,
            "check": "reference",
        }));
        families.push(json!({
            "family": family,
            "architecture": architecture(family),
            "seeds_cpu": seeds_cpu(family),
            "profile": args.profile,
            "weights_bytes": weights_bytes,
            "request": r,
            "export": export,
            "rows": rows,
        }));
    }
    let families = merged(&args.out, families);
    let report = json!({
        "threads": 2,
        "pytorch": versions,
        "families": families,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
    let chart = args.out.with_extension("svg");
    crate::bench_chart::speed_chart(&report, &chart)?;
    print_table(&report);
    eprintln!("written to {} and {}", args.out.display(), chart.display());
    Ok(())
}

/// This run's families with what the report already at `path` holds that
/// it did not measure (whole families, and a family's rows of backends
/// this run left out, marked `"earlier_run": true`), in the family
/// table's order.
fn merged(path: &Path, measured: Vec<Value>) -> Vec<Value> {
    let earlier = read(path)
        .ok()
        .and_then(|r| r["families"].as_array().cloned())
        .unwrap_or_default();
    let find = |list: &[Value], family: &str| list.iter().find(|f| f["family"] == family).cloned();
    let order = |r: &Value| {
        ["cpu", "ort", "openvino", "pytorch"]
            .iter()
            .position(|b| r["backend"] == *b)
    };
    FAMILIES
        .iter()
        .filter_map(
            |family| match (find(&measured, family), find(&earlier, family)) {
                (Some(mut now), Some(before)) => {
                    let rows = now["rows"].as_array().cloned().unwrap_or_default();
                    let kept = before["rows"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|old| !rows.iter().any(|r| r["backend"] == old["backend"]))
                        .map(|old| {
                            let mut old = old.clone();
                            old["earlier_run"] = json!(true);
                            old
                        });
                    let mut all: Vec<Value> = kept.chain(rows.iter().cloned()).collect();
                    all.sort_by_key(order);
                    now["rows"] = json!(all);
                    Some(now)
                }
                (now, before) => now.or(before),
            },
        )
        .collect()
}

/// `--chart-only`: the table and the chart of the report at `path`,
/// without measuring.
fn chart_only(path: &Path) -> anyhow::Result<()> {
    let report = read(path)?;
    let chart = path.with_extension("svg");
    crate::bench_chart::speed_chart(&report, &chart)?;
    print_table(&report);
    eprintln!("drawn from {} into {}", path.display(), chart.display());
    Ok(())
}

fn print_table(report: &Value) {
    eprintln!(
        "\n| family | weights (MiB) | export (s) | backend | latency (ms) | throughput | seeds' unit | peak RSS (MiB) | speed vs PyTorch | seeds' CPU (theirs) |"
    );
    eprintln!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for f in report["families"].as_array().into_iter().flatten() {
        let export = f["export"]["export_s"]
            .as_f64()
            .map_or("–".to_owned(), |s| format!("{s:.1}"));
        for row in f["rows"].as_array().into_iter().flatten() {
            if row["status"] != "ok" {
                eprintln!(
                    "| {} | | | {} | {} | | | | | |",
                    f["family"].as_str().unwrap_or_default(),
                    row["backend"].as_str().unwrap_or_default(),
                    row["detail"].as_str().unwrap_or_default()
                );
                continue;
            }
            eprintln!(
                "| {} | {:.0} | {} | {} | {:.0} | {:.3} {} | {} | {:.0} | {:.2}× | {} |",
                f["family"].as_str().unwrap_or_default(),
                f["weights_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
                export,
                row["backend"].as_str().unwrap_or_default(),
                row["latency_s"].as_f64().unwrap_or(0.0) * 1e3,
                row["throughput"].as_f64().unwrap_or(0.0),
                row["unit"].as_str().unwrap_or_default(),
                row["seeds_style"].as_str().unwrap_or_default(),
                row["peak_rss_mib"].as_f64().unwrap_or(0.0),
                row["speed_vs_pytorch"].as_f64().unwrap_or(0.0),
                f["seeds_cpu"].as_str().unwrap_or_default(),
            );
        }
    }
}
