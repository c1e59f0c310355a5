//! `cargo xtask ci`: what `.ci/run` runs on a clean clone.

use crate::cuda_toolkit;
use crate::ipfs_node;
use crate::models;
use crate::ort_runtime::{self, OrtRuntime};
use crate::process::{cargo, sh};
use crate::python_clients;
use crate::qemu;
use std::path::{Path, PathBuf};

pub fn run() -> anyhow::Result<()> {
    sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    // Runtime components the tests need: fetched here, never by hand.
    let minilm = models::minilm()?;
    let smollm2 = models::smollm2_gguf()?;
    let ort = ort_runtime::install()?;
    let pythons = Pythons {
        hf_hub: python_clients::hf_hub()?,
        openai: python_clients::openai()?,
        subtitles: python_clients::subtitles()?,
        // PyTorch for the test of `bench models`' JSON (one small family).
        torch: python_clients::torch()?,
    };
    // An emulated CPU without AVX-512, to check the kernels picked there
    // (x86-64 hosts only: the emulator runs this host's binary).
    let qemu = if cfg!(target_arch = "x86_64") {
        Some(qemu::install()?)
    } else {
        None
    };
    let install = ipfs_node::install_dir();
    let api = ipfs_node::start(&install)?;
    eprintln!("IPFS node up for the tests: IPFS_API_URL={api}");
    // Stop the node whatever the tests do: a failing run must not leave a
    // daemon behind.
    let result = run_tests(&minilm, &smollm2, &ort, &api, &pythons, qemu.as_deref());
    if let Err(e) = ipfs_node::stop(&install) {
        eprintln!("warning: could not stop the IPFS node: {e:#}");
    }
    result?;
    // The CUDA code cannot rot: it is compiled and linted here too, with a
    // compiler from PyPI (running it needs a GPU, which CI has not).
    let cuda = cuda_toolkit::install()?;
    sh(cuda.apply(cargo().args([
        "clippy",
        "-p",
        "ipfs-accelerate-cli",
        // The binary and, through it, every library's CUDA code. Not the
        // tests: their harness turns llama.cpp back on, and llama.cpp,
        // linted with the workspace above, would be built again for this
        // feature set (its ten-minute CMake build).
        "--bins",
        "--no-default-features",
        "--features",
        "cuda",
        "--",
        "-D",
        "warnings",
    ])))?;
    eprintln!("ci: all checks passed");
    Ok(())
}

/// The virtual environments' Pythons the tests drive.
struct Pythons {
    hf_hub: PathBuf,
    openai: PathBuf,
    subtitles: PathBuf,
    torch: PathBuf,
}

fn run_tests(
    minilm: &Path,
    smollm2: &Path,
    ort: &OrtRuntime,
    api: &str,
    pythons: &Pythons,
    qemu: Option<&Path>,
) -> anyhow::Result<()> {
    let mut tests = cargo();
    if has_nextest() {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("cargo-nextest not found; using cargo test");
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    // ORT_DYLIB_PATH and IPFS_ACCELERATE_OPENVINO_EP: the ort/openvino
    // tests run for real (and fail, never skip, under REQUIRE_ALL).
    ort.apply(&mut tests)
        .env("IPFS_ACCELERATE_REQUIRE_ALL", "1")
        .env("IPFS_ACCELERATE_MINILM_DIR", minilm)
        .env("IPFS_ACCELERATE_SMOLLM2_GGUF", smollm2)
        .env("IPFS_API_URL", api)
        .env("IPFS_ACCELERATE_HF_HUB_PYTHON", &pythons.hf_hub)
        .env("IPFS_ACCELERATE_OPENAI_PYTHON", &pythons.openai)
        .env("IPFS_ACCELERATE_SUBTITLES_PYTHON", &pythons.subtitles)
        .env("IPFS_ACCELERATE_TORCH_PYTHON", &pythons.torch);
    if let Some(qemu) = qemu {
        tests.env("IPFS_ACCELERATE_QEMU_X86_64", qemu);
    }
    sh(&mut tests)?;
    sh(ort
        .apply(&mut cargo())
        .args(["test", "--workspace", "--doc"])
        .env("IPFS_ACCELERATE_REQUIRE_ALL", "1")
        .env("IPFS_API_URL", api))?;
    Ok(())
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
