//! The binary under test, handed to the shared harness
//! (`ipfs-accelerate-tests`): only this crate's tests know its path.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub use ipfs_accelerate_tests::*;

/// The `ipfs-accelerate` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ipfs-accelerate");

/// The binary under test with a clean environment: only PATH, HOME pointing
/// at a temp home, our cache at `cache`, an empty Hub cache, Hub offline
/// (see [`runner::command`]).
pub fn cli(home: &Path) -> Command {
    runner::command(Path::new(BIN), home)
}

/// The backends the reference tests run on here: `cpu`, then `ort` and
/// `openvino` when their libraries are installed and serve this processor
/// (otherwise the skip of `test` is reported). On the ONNX backends a
/// fixture without graphs is exported on first use.
pub fn parity_backends(test: &str) -> Vec<&'static str> {
    let mut backends = vec!["cpu"];
    for (name, openvino) in [("ort", false), ("openvino", true)] {
        if !ort_missing_skip(test, openvino) {
            backends.push(name);
        }
    }
    backends
}

/// [`cli`] able to run `backend`: with the ONNX Runtime library (and the
/// OpenVINO plugin) for the ONNX backends.
pub fn cli_on(home: &Path, backend: &str) -> Command {
    let mut cmd = cli(home);
    if backend == "ort" || backend == "openvino" {
        if let Some(dylib) = ort_dylib() {
            cmd.env("ORT_DYLIB_PATH", dylib);
        }
    }
    if backend == "openvino" {
        if let Some(plugin) = openvino_ep() {
            cmd.env("IPFS_ACCELERATE_OPENVINO_EP", plugin);
        }
    }
    cmd
}
