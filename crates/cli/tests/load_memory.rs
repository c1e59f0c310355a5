//! Loading weights costs about their size in memory, not twice it: `embed`
//! with all-MiniLM-L6-v2 peaks at most at 1.3 × the weights + 100 MiB of
//! resident memory (the safetensors are read tensor by tensor; see
//! `crates/skills/src/load/weights.rs`).

#![allow(clippy::unwrap_used)]

use ipfs_accelerate_tests::{minilm_dir, skip};
use nix::sys::resource::{getrusage, UsageWho};
use std::process::Command;

#[test]
fn embed_peaks_near_the_weights_size() {
    let Some(model) = minilm_dir() else {
        return skip(
            "embed_peaks_near_the_weights_size",
            "IPFS_ACCELERATE_MINILM_DIR is not set (cargo xtask fetch-models)",
        );
    };
    let home = tempfile::tempdir().unwrap();
    // The only child this test process waits for: the children's peak is
    // this command's.
    let out = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .env("HOME", home.path())
        .env("IPFS_ACCELERATE_CACHE", home.path().join("cache"))
        .env("HF_HUB_OFFLINE", "1")
        .args(["embed", "--json", "--backend", "cpu", "--model"])
        .arg(&model)
        .arg("hello world")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak_bytes = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss() as f64 * 1024.0;
    let weights = std::fs::metadata(model.join("model.safetensors"))
        .unwrap()
        .len() as f64;
    let limit = 1.3 * weights + 100.0 * 1024.0 * 1024.0;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    eprintln!(
        "peak RSS {:.1} MiB, weights {:.1} MiB, limit {:.1} MiB",
        mib(peak_bytes),
        mib(weights),
        mib(limit)
    );
    assert!(
        peak_bytes <= limit,
        "peak RSS {:.1} MiB exceeds {:.1} MiB (weights {:.1} MiB)",
        mib(peak_bytes),
        mib(limit),
        mib(weights)
    );
}
