//! The long-form transcription row of `cargo xtask bench multimodal` (also
//! `cargo xtask bench long-form` alone): a 5-minute recording through a
//! real-size Whisper (tiny.en's architecture, random weights, built once
//! under `target/bench-models/`), ours beside PyTorch eager on the same
//! weights, audio and thread count, in one run.
//!
//! Ours is the release binary's `transcribe` as a whole process (model load
//! included), timed after one warm-up run; its peak resident memory is the
//! process's high-water mark (`VmHWM`). PyTorch's is in-process
//! (`xtask/scripts/whisper_long_form_bench.py`, in the `target/torch-venv`
//! virtual environment), after a warm-up on 30 s. The answers are checked:
//! the first 8 token ids must be equal (random weights decide many tokens by
//! small margins, so later ids may part).
//!
//! Backends: candle CPU. ONNX Runtime and OpenVINO have no Whisper path yet
//! (the text-and-speech ONNX issue), so they have no row.

use crate::process::{root, sh};
use crate::python_clients;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const THREADS: &str = "2";
const MAX_NEW_TOKENS: &str = "128";
/// Leading token ids that must agree.
const CHECKED_IDS: usize = 8;

pub fn run() -> anyhow::Result<()> {
    let python = python_clients::torch()?;
    let models = root().join("target/bench-models");
    let model = models.join("whisper-tiny-en-random");
    let wav = models.join("long-form-300s.wav");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    let reference_json = out.join("long_form_pytorch.json");
    sh(Command::new(&python)
        .arg(root().join("xtask/scripts/whisper_long_form_bench.py"))
        .arg(&model)
        .arg(&wav)
        .arg(&reference_json)
        .args([THREADS, MAX_NEW_TOKENS]))?;
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(&reference_json)?)?;

    let bin = crate::process::build_release_cli()?;
    let home = tempfile_dir(&out.join("long-form-home"))?;
    // Warm-up: the model file into the page cache, the binary loaded once.
    let _ = transcribe(&bin, &home, &model, &wav)?;
    let (answer, wall, peak_kib) = transcribe(&bin, &home, &model, &wav)?;

    let ours: Vec<u64> = ids(&answer["token_ids"]);
    let theirs: Vec<u64> = ids(&reference["token_ids"]);
    let equal_prefix = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
    if equal_prefix < CHECKED_IDS.min(theirs.len()) {
        bail!(
            "ours and PyTorch's token ids differ within the first {CHECKED_IDS}: {:?} vs {:?}",
            &ours[..ours.len().min(CHECKED_IDS)],
            &theirs[..theirs.len().min(CHECKED_IDS)]
        );
    }
    let seconds = reference["seconds"].as_f64().context("seconds")?;
    let torch_wall = reference["wall_s"].as_f64().context("wall_s")?;
    let torch_kib = reference["peak_rss_kib"].as_f64().context("peak_rss_kib")?;
    let weights = std::fs::metadata(model.join("model.safetensors"))?.len();
    let row = json!({
        "audio_s": seconds,
        "model": "whisper tiny.en architecture, random weights",
        "weights_bytes": weights,
        "threads": 2,
        "max_new_tokens_per_window": 128,
        "candle_cpu": {
            "wall_s": wall,
            "real_time_factor": wall / seconds,
            "peak_rss_kib": peak_kib,
            "segments": answer["segments"].as_array().map_or(0, Vec::len),
        },
        "pytorch_eager": {
            "wall_s": torch_wall,
            "real_time_factor": torch_wall / seconds,
            "peak_rss_kib": torch_kib,
            "torch": reference["torch"],
            "transformers": reference["transformers"],
        },
        "speed_vs_pytorch": torch_wall / wall,
        "token_ids": {
            "ours": ours.len(),
            "pytorch": theirs.len(),
            "equal_prefix": equal_prefix,
            "all_equal": ours == theirs,
        },
    });
    std::fs::write(
        out.join("long_form.json"),
        serde_json::to_string_pretty(&row)?,
    )?;
    eprintln!("\nLong-form transcription, {seconds} s recording, 2 threads (same run):");
    eprintln!(
        "  {:<16} {:>9} {:>8} {:>14} {:>13}",
        "engine", "wall (s)", "RTF", "peak RSS (MiB)", "vs PyTorch"
    );
    eprintln!(
        "  {:<16} {:>9.2} {:>8.4} {:>14.0} {:>12.2}×",
        "candle cpu",
        wall,
        wall / seconds,
        peak_kib / 1024.0,
        torch_wall / wall
    );
    eprintln!(
        "  {:<16} {:>9.2} {:>8.4} {:>14.0} {:>13}",
        "pytorch eager",
        torch_wall,
        torch_wall / seconds,
        torch_kib / 1024.0,
        "1.00×"
    );
    eprintln!(
        "  weights {:.0} MiB; token ids: {equal_prefix} of {} equal from the start (all equal: {})",
        weights as f64 / 1048576.0,
        theirs.len(),
        ours == theirs
    );
    eprintln!(
        "  (ONNX Runtime / OpenVINO: no Whisper path yet; written to target/bench/long_form.json)"
    );
    Ok(())
}

fn ids(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn tempfile_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::create_dir_all(path)?;
    Ok(path.to_path_buf())
}

/// Runs `transcribe --json` as a whole process: its answer, wall time and
/// peak resident memory (KiB), read from `/proc` while it runs.
fn transcribe(
    bin: &Path,
    home: &Path,
    model: &Path,
    wav: &Path,
) -> anyhow::Result<(Value, f64, f64)> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args([
            "transcribe",
            "--json",
            "--max-new-tokens",
            MAX_NEW_TOKENS,
            "--backend",
            "cpu",
        ])
        .arg("--model")
        .arg(model)
        .arg(wav)
        .env("HOME", home)
        .env("IPFS_ACCELERATE_CACHE", home.join("cache"))
        .env("HF_HUB_OFFLINE", "1")
        .env("RAYON_NUM_THREADS", THREADS)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_kib = 0f64;
    let stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || -> std::io::Result<String> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut text)?;
        Ok(text)
    });
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed().as_secs_f64();
    let text = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the output reader panicked"))??;
    if !status.success() {
        bail!("transcribe failed ({status})");
    }
    Ok((serde_json::from_str(&text)?, wall, peak_kib))
}
