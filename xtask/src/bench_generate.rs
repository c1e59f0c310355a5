//! `cargo xtask bench generate`: GGUF generation on our llama.cpp backend
//! against llama.cpp itself (llama-cpp-python 0.3.16, built from source
//! here with `GGML_NATIVE`), same files, same prompt ids, same threads:
//! prompt and decode tokens/s and peak memory for SmolLM2-135M-Instruct in
//! Q4_1 (the published file) and Q4_0, Q5_K_M, Q4_K_M, Q8_0 and F16 (made
//! from it with llama.cpp's quantizer), plus, for each of them, the
//! aggregate tokens/s of 1, 4 and 8 concurrent streams on both sides
//! (llama.cpp's: its own batched decoding of as many sequences, with a bare
//! loop). Each side
//! runs one process per file, so each peak is its own. Results:
//! `target/bench/generate/`.
//! Then the f32 decoders at real size (GPT-2 124M, OPT-125m, LLaMAs with
//! SmolLM2-135M's and TinyLlama-1.1B's configs; random weights) on candle
//! CPU against PyTorch
//! eager: `bench models`' rows for those families (`--skip-f32` leaves
//! them out).

use crate::models::{self, python};
use crate::process::{cargo, root, sh};
use anyhow::Context;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const LLAMA_CPP_PYTHON: &str = "llama-cpp-python==0.3.16";
const NUMPY: &str = "numpy==2.4.6";
/// The types made from the published Q4_1 file.
const MADE: [&str; 5] = ["Q4_0", "Q5_K_M", "Q4_K_M", "Q8_0", "F16"];
/// The setting.
const THREADS: &str = "2";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let skip_f32 = match args {
        [] => false,
        [flag] if flag == "--skip-f32" => true,
        _ => anyhow::bail!("usage: cargo xtask bench generate [--skip-f32]"),
    };
    let dir = root().join("target/bench/generate");
    std::fs::create_dir_all(&dir)?;
    let python = llama_cpp_python()?;
    let published = models::smollm2_gguf()?;
    let mut files = vec![("Q4_1".to_owned(), published.clone())];
    for kind in MADE {
        let file = dir.join(format!("SmolLM2-135M-Instruct.{kind}.gguf"));
        if !file.is_file() {
            sh(Command::new(&python)
                .arg(script())
                .args(["quantize"])
                .arg(&published)
                .arg(&file)
                .arg(kind))?;
        }
        files.push((kind.to_owned(), file));
    }

    let mut rows = Vec::new();
    for (kind, file) in &files {
        // Solo: one sequence in the context, as llama.cpp's.
        let ours = dir.join(format!("ours-{kind}.json"));
        our_run(file, &ours, "1", "")?;
        let theirs = dir.join(format!("llama-cpp-{kind}.json"));
        their_run(&python, "run", file, &ours, &theirs)?;
        // Concurrent streams, 8 sequences in the context, on every type:
        // how much batching gains depends on the type's batched kernels.
        let streams = dir.join(format!("ours-streams-{kind}.json"));
        our_run(file, &streams, "8", "1,4,8")?;
        let their_streams = dir.join(format!("llama-cpp-streams-{kind}.json"));
        their_run(&python, "streams", file, &streams, &their_streams)?;
        rows.push(Row {
            kind: kind.clone(),
            ours: read(&ours)?,
            theirs: read(&theirs)?,
            streams: read(&streams)?,
            their_streams: read(&their_streams)?,
        });
    }

    let summary = print_summary(&rows);
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    eprintln!("\nresults: {}", dir.display());
    if !skip_f32 {
        for family in ["gpt2", "opt", "llama", "llama-1b"] {
            let args = ["--only", family, "--backend", "cpu"].map(str::to_owned);
            crate::bench_models::run(&args)?;
        }
    }
    Ok(())
}

/// Our side, one process: `streams` sequences in the llama.cpp context and
/// the stream counts to measure (`measure`, empty for none).
fn our_run(file: &Path, out: &Path, streams: &str, measure: &str) -> anyhow::Result<()> {
    sh(cargo()
        .args([
            "bench",
            "-p",
            "ipfs-accelerate-skills",
            "--bench",
            "generate",
        ])
        .env("IPFS_ACCELERATE_BENCH_GGUF", file)
        .env("IPFS_ACCELERATE_BENCH_OUT", out)
        .env("IPFS_ACCELERATE_BENCH_STREAMS", measure)
        .env("IPFS_ACCELERATE_LLAMA_CPP_STREAMS", streams)
        .env("RAYON_NUM_THREADS", THREADS)
        .env("OMP_NUM_THREADS", THREADS))
}

/// The Python side: quantizing, and llama.cpp's runs.
fn script() -> PathBuf {
    root().join("xtask/scripts/bench_generate.py")
}

/// llama.cpp's side, one process: `bench_generate.py COMMAND FILE OURS OUT`
/// (`run` or `streams`), on the prompt ids and end ids our run wrote.
fn their_run(
    python: &Path,
    command: &str,
    file: &Path,
    ours: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    sh(Command::new(python)
        .arg(script())
        .arg(command)
        .arg(file)
        .arg(ours)
        .arg(out)
        .env("OMP_NUM_THREADS", THREADS))
}

fn read(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("the bench wrote no {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// One type's results: solo and streams, ours and llama.cpp's.
struct Row {
    kind: String,
    ours: Value,
    theirs: Value,
    streams: Value,
    their_streams: Value,
}

fn print_summary(rows: &[Row]) -> Value {
    let rate = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let mib = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN) / 1048576.0;
    eprintln!(
        "\nSmolLM2-135M-Instruct GGUF, {THREADS} threads, ours (llamacpp backend, kernels {}) vs llama.cpp (llama-cpp-python {}):",
        rows.first().map_or("?", |r| r.ours["kernels"].as_str().unwrap_or("?")),
        rows.first().map_or("?", |r| r.theirs["llama_cpp_python"].as_str().unwrap_or("?")),
    );
    eprintln!("  type     prompt tok/s ours / llama.cpp = ratio   decode tok/s ours / llama.cpp = ratio   peak MiB ours / llama.cpp");
    let mut table = Vec::new();
    for row in rows {
        let (kind, ours, theirs) = (&row.kind, &row.ours, &row.theirs);
        let (op, tp) = (
            rate(ours, "prompt_tokens_per_s"),
            rate(theirs, "prompt_tokens_per_s"),
        );
        let (od, td) = (
            rate(ours, "decode_tokens_per_s"),
            rate(theirs, "decode_tokens_per_s"),
        );
        eprintln!(
            "  {kind:<7} {op:8.1} / {tp:8.1} = {:5.2}x          {od:8.1} / {td:8.1} = {:5.2}x          {:7.1} / {:7.1}",
            op / tp,
            od / td,
            mib(ours, "peak_rss_bytes"),
            mib(theirs, "peak_rss_bytes")
        );
        table.push(serde_json::json!({
            "type": kind,
            "ours": {"prompt_tokens_per_s": op, "decode_tokens_per_s": od, "peak_mib": mib(ours, "peak_rss_bytes")},
            "llama_cpp": {"prompt_tokens_per_s": tp, "decode_tokens_per_s": td, "peak_mib": mib(theirs, "peak_rss_bytes")},
            "prompt_ratio": op / tp,
            "decode_ratio": od / td,
            "streams": stream_rows(row),
        }));
    }
    serde_json::json!({"types": table})
}

/// Prints and returns one type's streams rows: aggregate tokens/s at 1, 4
/// and 8 streams, ours and llama.cpp's own batched decoding.
fn stream_rows(row: &Row) -> Value {
    let (ours, theirs) = (&row.streams, &row.their_streams);
    eprintln!(
        "  {}: concurrent greedy streams, 64 tokens each (prompts included), ours / llama.cpp's own batched decoding:",
        row.kind
    );
    let agg = |v: &Value, n: &str| v["streams"][n]["tokens_per_s"].as_f64().unwrap_or(f64::NAN);
    let (one, their_one) = (agg(ours, "1"), agg(theirs, "1"));
    let mut rows = serde_json::Map::new();
    for n in ["1", "4", "8"] {
        let (ours_n, theirs_n) = (agg(ours, n), agg(theirs, n));
        let tokens = |v: &Value| v["streams"][n]["tokens"].as_u64();
        if tokens(ours) != tokens(theirs) {
            eprintln!(
                "    warning: at {n} streams ours generated {:?} tokens, llama.cpp {:?}",
                tokens(ours),
                tokens(theirs)
            );
        }
        eprintln!(
            "    {n} streams: {ours_n:7.1} / {theirs_n:7.1} tok/s aggregate = {:5.2}x / {:5.2}x one stream; ours / llama.cpp = {:5.2}x (at most {} in one step)",
            ours_n / one,
            theirs_n / their_one,
            ours_n / theirs_n,
            ours["streams"][n]["peak_in_one_step"]
        );
        rows.insert(
            n.to_owned(),
            serde_json::json!({
                "ours": ours["streams"][n],
                "llama_cpp": theirs["streams"][n],
                "ratio": ours_n / theirs_n,
                "ours_vs_one_stream": ours_n / one,
                "llama_cpp_vs_one_stream": theirs_n / their_one,
            }),
        );
    }
    eprintln!(
        "    peak memory with 8 sequences of 2048 positions: {:.1} MiB",
        ours["streams_peak_rss_bytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0
    );
    Value::Object(rows)
}

/// llama-cpp-python, compiled from its source distribution for this CPU,
/// in `target/bench/llama-cpp-python-venv` (made once).
fn llama_cpp_python() -> anyhow::Result<PathBuf> {
    let venv = root().join("target/bench/llama-cpp-python-venv");
    let bin = venv.join("bin/python");
    let probe = "import importlib.metadata as m; print(m.version('llama_cpp_python'))";
    let want = LLAMA_CPP_PYTHON.split_once("==").map_or("", |(_, v)| v);
    let installed = Command::new(&bin)
        .args(["-c", probe])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == want);
    if installed {
        return Ok(bin);
    }
    eprintln!("building {LLAMA_CPP_PYTHON} from source (once; several minutes)");
    sh(Command::new(python()).args(["-m", "venv"]).arg(&venv))?;
    sh(Command::new(&bin)
        .args(["-m", "pip", "install", "--quiet", "--no-cache-dir"])
        .args(["--no-binary", "llama-cpp-python", LLAMA_CPP_PYTHON, NUMPY])
        // As llama.cpp's own build does by default: kernels for this CPU.
        .env("CMAKE_ARGS", "-DGGML_NATIVE=ON")
        .env("CMAKE_BUILD_PARALLEL_LEVEL", "2")
        // The reference is llama.cpp as published: none of the CMake
        // settings `.cargo/config.toml` gives our build (our kernels' hook
        // among them), whichever of them its build would read.
        .env_remove("CMAKE_PROJECT_INCLUDE")
        .env_remove("CMAKE_CXX_FLAGS"))
    .with_context(|| format!("building {LLAMA_CPP_PYTHON} failed"))?;
    Ok(bin)
}
