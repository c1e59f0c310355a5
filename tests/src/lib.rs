//! The workspace's test harness, shared by the cross-crate tests in
//! `tests/tests/`, the command-line tests in `crates/cli/tests/` (through
//! their thin `common` module, which passes the binary's path) and the
//! benches that drive the binary:
//!
//! * [`fixture`]: fixture folders, `reference.json`, reference arrays
//!   (inline `{shape, data}` or in `reference.safetensors`), variants;
//! * [`compare`]: [`assert_close`], [`max_abs_diff`], cosine checks;
//! * [`checks`]: answers against references (arrays, similarity scores,
//!   T5's greedy ids);
//! * [`runner`]: the binary in a clean environment, its one JSON answer or
//!   its one-line error, and the commands every skill test runs;
//! * `library`, `onnx`, `media`, `serve` (feature `harness`, on by
//!   default): loaders over a temp cache, ONNX Runtime sessions, WAV files,
//!   a served binary and its HTTP client;
//! * [`ipfs_node`]: the js-ipfs node;
//! * skipping that says so (or fails under `IPFS_ACCELERATE_REQUIRE_ALL=1`).

#![allow(clippy::print_stdout)]

pub mod chat_fixture;
pub mod checks;
pub mod compare;
pub mod fixture;
#[cfg(feature = "harness")]
pub mod fuzz;
pub mod hub_server;
pub mod ipfs_node;
#[cfg(feature = "harness")]
pub mod library;
#[cfg(feature = "harness")]
pub mod media;
#[cfg(feature = "harness")]
pub mod onnx;
pub mod parity;
pub mod runner;
#[cfg(feature = "harness")]
pub mod serve;

pub use chat_fixture::*;
pub use checks::*;
pub use compare::*;
pub use fixture::*;
#[cfg(feature = "harness")]
pub use library::*;
#[cfg(feature = "harness")]
pub use media::*;
#[cfg(feature = "harness")]
pub use onnx::*;
pub use parity::{parity, Check};
pub use runner::*;

use std::path::{Path, PathBuf};

/// True when `IPFS_ACCELERATE_REQUIRE_ALL` is truthy: skips become failures.
pub fn require_all() -> bool {
    std::env::var("IPFS_ACCELERATE_REQUIRE_ALL")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Reports a skipped test; panics instead when everything is required.
/// Returns so the caller can `return` right after.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !require_all(),
        "{test}: required component missing under IPFS_ACCELERATE_REQUIRE_ALL=1: {reason}"
    );
    println!("SKIPPED {test}: {reason}");
    eprintln!("SKIPPED {test}: {reason}");
}

/// Reports a test (or a part of one) that this machine's hardware cannot
/// run. Unlike [`skip`], not a failure under `IPFS_ACCELERATE_REQUIRE_ALL`:
/// that variable catches components a setup step would install, and no
/// setup step installs a processor.
pub fn skip_hardware(test: &str, reason: &str) {
    println!("SKIPPED {test} (hardware): {reason}");
    eprintln!("SKIPPED {test} (hardware): {reason}");
}

/// Why the OpenVINO execution provider offers no device on this machine's
/// processor, or `None` where it does: the plugin serves Intel processors
/// only (ONNX Runtime's device vendor id 0x8086), and says so on others
/// (`status`: "offers no CPU device (it runs on Intel processors; …)").
pub fn openvino_unsupported_cpu() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let vendor = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("vendor_id"))?
        .split(':')
        .nth(1)?
        .trim()
        .to_owned();
    (vendor != "GenuineIntel")
        .then(|| format!("the OpenVINO plugin serves Intel processors only; this CPU is {vendor}"))
}

/// `found`, or `None` after reporting the skip of `test` for `reason`.
pub fn or_skip<T>(found: Option<T>, test: &str, reason: &str) -> Option<T> {
    if found.is_none() {
        skip(test, reason);
    }
    found
}

/// The path in environment variable `var`, when `usable`.
fn env_path(var: &str, usable: impl FnOnce(&Path) -> bool) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(var)?);
    usable(&path).then_some(path)
}

/// The real all-MiniLM-L6-v2 folder (`cargo xtask fetch-models` fetches it;
/// `cargo xtask ci` passes it as `IPFS_ACCELERATE_MINILM_DIR`).
pub fn minilm_dir() -> Option<PathBuf> {
    env_path("IPFS_ACCELERATE_MINILM_DIR", |dir| {
        dir.join("model.safetensors").is_file()
    })
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF file (`cargo xtask
/// fetch-models` fetches it; `cargo xtask ci` passes it as
/// `IPFS_ACCELERATE_SMOLLM2_GGUF`).
pub fn smollm2_gguf() -> Option<PathBuf> {
    env_path("IPFS_ACCELERATE_SMOLLM2_GGUF", Path::is_file)
}

/// The ONNX Runtime library (`cargo xtask setup-ort` fetches it; `cargo
/// xtask ci` passes it as `ORT_DYLIB_PATH`).
pub fn ort_dylib() -> Option<PathBuf> {
    env_path("ORT_DYLIB_PATH", Path::is_file)
}

/// The OpenVINO plugin execution provider (`IPFS_ACCELERATE_OPENVINO_EP`,
/// from `cargo xtask setup-ort`).
pub fn openvino_ep() -> Option<PathBuf> {
    env_path("IPFS_ACCELERATE_OPENVINO_EP", Path::is_file)
}

/// QEMU's x86-64 user-mode emulator (`cargo xtask ci` fetches Debian's
/// static build and passes it as `IPFS_ACCELERATE_QEMU_X86_64`), for
/// running the binary on an emulated CPU without AVX-512.
pub fn qemu_x86_64() -> Option<PathBuf> {
    env_path("IPFS_ACCELERATE_QEMU_X86_64", Path::is_file)
}

/// [`qemu_x86_64`], or `None` after reporting the skip of `test`; on a host
/// that is not x86-64 a hardware skip (the emulator runs x86-64 binaries
/// on x86-64 here; another architecture's binary is not what it checks).
pub fn qemu_or_skip(test: &str) -> Option<PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        skip_hardware(test, "not an x86-64 host");
        return None;
    }
    or_skip(
        qemu_x86_64(),
        test,
        "IPFS_ACCELERATE_QEMU_X86_64 is not set (`cargo xtask ci` fetches qemu-user-static)",
    )
}

const NO_MINILM: &str =
    "all-MiniLM-L6-v2 not fetched (run `cargo xtask fetch-models`; set IPFS_ACCELERATE_MINILM_DIR)";
const NO_SMOLLM2: &str = "IPFS_ACCELERATE_SMOLLM2_GGUF is not set (run `cargo xtask fetch-models`)";

/// [`minilm_dir`], or `None` after reporting the skip of `test`.
pub fn minilm_or_skip(test: &str) -> Option<PathBuf> {
    or_skip(minilm_dir(), test, NO_MINILM)
}

/// [`smollm2_gguf`], or `None` after reporting the skip of `test`.
pub fn smollm2_or_skip(test: &str) -> Option<PathBuf> {
    or_skip(smollm2_gguf(), test, NO_SMOLLM2)
}

/// Why a test needing ONNX Runtime (and, with `openvino`, its OpenVINO
/// provider) cannot run here; `None` when it can.
pub fn ort_missing(openvino: bool) -> Option<&'static str> {
    if ort_dylib().is_none() {
        return Some(
            "ONNX Runtime not installed (run `cargo xtask setup-ort`; set ORT_DYLIB_PATH)",
        );
    }
    if openvino && openvino_ep().is_none() {
        return Some("OpenVINO EP not installed (run `cargo xtask setup-ort`; set IPFS_ACCELERATE_OPENVINO_EP)");
    }
    None
}

/// True (after reporting the skip of `test`) when ONNX Runtime, or with
/// `openvino` its OpenVINO provider, is not installed, or with `openvino`
/// this processor is not one the provider serves.
pub fn ort_missing_skip(test: &str, openvino: bool) -> bool {
    if let Some(reason) = ort_missing(openvino) {
        skip(test, reason);
        return true;
    }
    if let Some(reason) = openvino.then(openvino_unsupported_cpu).flatten() {
        skip_hardware(test, &reason);
        return true;
    }
    false
}
