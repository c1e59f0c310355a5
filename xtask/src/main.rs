//! Developer tasks: `cargo xtask <task>`.
//!
//! * `ci`: fmt check, clippy -D warnings, every test (nextest) and doc test,
//!   with the runtime components the tests need fetched first.
//! * `demo`: the README's main job, semantic search with all-MiniLM-L6-v2.
//! * `bench`: benchmarks (`bench embed`, `bench serve`, `bench serve-load`, `bench storage`, `bench generate`, `bench multimodal`, `bench long-form`, `bench models`).
//! * `fuzz [SECONDS]`: the fuzz targets for SECONDS each (default 60; `ci`
//!   runs them for 4 s each).
//! * `ipfs-node start|stop|status|patch`: the real IPFS node (js-ipfs) the
//!   tests run against.
//! * `fetch-models`: download the real models the tests and demo use
//!   (all-MiniLM-L6-v2, the SmolLM2-135M-Instruct GGUF).
//! * `matrix`: every skill on every backend against the fixtures, written to
//!   `docs/model-status.md` and `docs/model-status.json`.
//! * `setup-ort`: ONNX Runtime 1.31 and its OpenVINO execution provider
//!   from PyPI wheels for the `ort`/`openvino` backends; prints the
//!   environment lines.
//! * `setup-build-tools`: CMake and libclang from PyPI wheels, which
//!   building llama.cpp needs (every task that runs cargo fetches them
//!   itself); prints the environment lines for a plain `cargo build`.
//! * `setup-cuda`: a CUDA compiler from PyPI wheels for `--features cuda`;
//!   prints the environment lines.

mod bench;
mod bench_chart;
mod bench_embed_onnx;
mod bench_generate;
mod bench_long_form;
mod bench_models;
mod bench_storage;
mod build_tools;
mod ci;
mod cuda_toolkit;
mod demo;
mod fuzz;
mod ipfs_node;
mod matrix;
mod models;
mod ort_runtime;
mod process;
mod python_clients;
mod qemu;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    // Tasks that run cargo build llama.cpp (CMake, bindgen) on the way.
    if matches!(task, "ci" | "demo" | "bench" | "fuzz" | "matrix") {
        build_tools::export()?;
    }
    match task {
        "ci" => ci::run(),
        "demo" => demo::run(),
        "bench" => bench::run(rest),
        "fuzz" => fuzz::run(rest),
        "ipfs-node" => ipfs_node::run(rest),
        "matrix" => matrix::run(rest),
        "setup-cuda" => cuda_toolkit::run(),
        "setup-ort" => ort_runtime::run(),
        "setup-build-tools" => build_tools::run(),
        "fetch-models" => {
            let dir = models::minilm()?;
            eprintln!("all-MiniLM-L6-v2: {}", dir.display());
            let gguf = models::smollm2_gguf()?;
            eprintln!("SmolLM2-135M-Instruct Q4_1: {}", gguf.display());
            Ok(())
        }
        "help" | "--help" | "-h" => {
            eprintln!("usage: cargo xtask <ci | demo | bench [embed|serve|serve-load|storage|generate|multimodal|long-form|models] | fuzz [SECONDS] | ipfs-node start|stop|status|patch | fetch-models | matrix | setup-ort | setup-cuda | setup-build-tools>");
            Ok(())
        }
        other => bail!(
            "unknown task '{other}' (try: ci, demo, bench, fuzz, ipfs-node, fetch-models, matrix, setup-ort, setup-cuda, setup-build-tools)"
        ),
    }
}
