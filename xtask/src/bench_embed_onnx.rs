//! The ONNX rows of `cargo xtask bench embed`: candle, ONNX Runtime and
//! OpenVINO on one model's ONNX graph (criterion bench `embed_onnx`), each
//! compared with ONNX Runtime's own Python API on the same graph and the same
//! batches in the same run.
//!
//! The model: `IPFS_ACCELERATE_MINILM_ONNX_DIR` (all-MiniLM-L6-v2 with an
//! `onnx/model.onnx`). TODO: the PyPI copy of all-MiniLM-L6-v2 has no ONNX
//! graph and the project must not need PyTorch to make one; once
//! `ipfs-accelerate export onnx` lands, export it here. Until then, without
//! that variable, the rows use the bert fixture's graph (tiny: the ratios
//! then measure per-call overhead, not compute).

use crate::bench::{mean_seconds, skills_bench};
use crate::models::python;
use crate::ort_runtime;
use crate::process::{root, sh};
use anyhow::Context;
use std::path::PathBuf;
use std::process::Command;

pub fn run(extra: &[String]) -> anyhow::Result<()> {
    let ort = ort_runtime::install()?;
    let (model, label) = match std::env::var_os("IPFS_ACCELERATE_MINILM_ONNX_DIR") {
        Some(dir) => (PathBuf::from(dir), "all-MiniLM-L6-v2"),
        None => {
            eprintln!(
                "note: IPFS_ACCELERATE_MINILM_ONNX_DIR is not set; the ONNX rows use the bert \
                 fixture's graph until `export onnx` can make all-MiniLM-L6-v2's (TODO)"
            );
            (root().join("fixtures/models/bert"), "bert fixture (tiny)")
        }
    };
    let out = root().join("target/criterion/embed_onnx");
    std::fs::create_dir_all(&out)?;
    let inputs = out.join("inputs.json");
    sh(ort
        .apply(&mut skills_bench("embed_onnx", extra))
        // Where `mean_seconds` reads, even when CARGO_TARGET_DIR is elsewhere.
        .env("CRITERION_HOME", root().join("target/criterion"))
        .env("IPFS_ACCELERATE_EMBED_ONNX_MODEL", &model)
        .env("IPFS_ACCELERATE_BENCH_INPUTS", &inputs))?;

    let python_result = out.join("python.json");
    sh(Command::new(python())
        .arg(root().join("xtask/scripts/ort_embed_bench.py"))
        .arg(model.join("onnx/model.onnx"))
        .arg(&inputs)
        .arg(&python_result)
        .env("PYTHONPATH", ort_runtime::python_path()?))?;
    let py: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&python_result)?)?;
    let py_short = py["short_s"]
        .as_f64()
        .context("python.json lacks short_s")?;
    let py_mixed = py["mixed_bs32_s"]
        .as_f64()
        .context("python.json lacks mixed_bs32_s")?;
    let ran: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&inputs)?)?;

    eprintln!(
        "\n{label}, ONNX graph rows (same run; ratio = ours / reference time, <1 is faster):"
    );
    eprintln!(
        "  {:<28} {:>12} {:>9} {:>9} {:>14} {:>9} {:>9}",
        "backend",
        "1 short (ms)",
        "vs py-ort",
        "vs candle",
        "256 bs32 (s/s)",
        "vs py-ort",
        "vs candle"
    );
    let candle_short = mean_seconds("embed_onnx_latency", "cpu").ok();
    let candle_mixed = mean_seconds("embed_onnx_256_bs32", "cpu").ok();
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.2}x", a / b));
    for backend in ran["backends"].as_array().into_iter().flatten() {
        let name = backend.as_str().unwrap_or("?");
        let short = mean_seconds("embed_onnx_latency", name)?;
        let mixed = mean_seconds("embed_onnx_256_bs32", name)?;
        eprintln!(
            "  {:<28} {:>12.3} {:>9} {:>9} {:>14.1} {:>9} {:>9}",
            name,
            short * 1e3,
            ratio(short, Some(py_short)),
            ratio(short, candle_short),
            256.0 / mixed,
            ratio(mixed, Some(py_mixed)),
            ratio(mixed, candle_mixed),
        );
    }
    eprintln!(
        "  {:<28} {:>12.3} {:>9} {:>9} {:>14.1}",
        format!(
            "python onnxruntime {}",
            py["onnxruntime"].as_str().unwrap_or("?")
        ),
        py_short * 1e3,
        "1.00x",
        ratio(py_short, candle_short),
        256.0 / py_mixed,
    );
    Ok(())
}
