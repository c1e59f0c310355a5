//! The ONNX rows of `cargo xtask bench embed`: candle, ONNX Runtime and
//! OpenVINO on one model's ONNX graph (criterion bench `embed_onnx`), each
//! compared with ONNX Runtime's own Python API on the same graph and the same
//! batches in the same run.
//!
//! The model: all-MiniLM-L6-v2 (the PyPI copy, which has no ONNX graph)
//! with an `onnx/model.onnx` made by our own `export onnx` (no PyTorch),
//! once, under `target/models/minilm-onnx/`; `IPFS_ACCELERATE_MINILM_ONNX_DIR`
//! names another folder of that shape instead.

use crate::bench::{mean_seconds, skills_bench};
use crate::models::python;
use crate::ort_runtime;
use crate::process::{cargo, root, sh};
use anyhow::Context;
use std::path::PathBuf;
use std::process::Command;

pub fn run(extra: &[String]) -> anyhow::Result<()> {
    let ort = ort_runtime::install()?;
    let model = match std::env::var_os("IPFS_ACCELERATE_MINILM_ONNX_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => minilm_with_onnx()?,
    };
    let label = "all-MiniLM-L6-v2";
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

/// all-MiniLM-L6-v2's files plus `onnx/model.onnx` exported by
/// `ipfs-accelerate export onnx`, made once.
fn minilm_with_onnx() -> anyhow::Result<PathBuf> {
    let dir = root().join("target/models/minilm-onnx");
    let graph = dir.join("onnx/model.onnx");
    if graph.is_file() {
        return Ok(dir);
    }
    let source = crate::models::minilm()?;
    // The whole folder: sentence-transformers' pooling lives in 1_Pooling/.
    ipfs_accelerate_tests::copy_dir(&source, &dir)
        .with_context(|| format!("cannot copy {} to {}", source.display(), dir.display()))?;
    let partial = dir.join("onnx.partial");
    let _ = std::fs::remove_dir_all(&partial);
    sh(cargo()
        .args([
            "run",
            "--release",
            "-p",
            "ipfs-accelerate-cli",
            "--",
            "export",
            "onnx",
            "--model",
        ])
        .arg(&source)
        .arg("--out")
        .arg(&partial))?;
    // Only a finished export takes the final name.
    let _ = std::fs::remove_dir_all(dir.join("onnx"));
    std::fs::rename(&partial, dir.join("onnx"))?;
    Ok(dir)
}
