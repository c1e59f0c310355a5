//! `cargo xtask fuzz [SECONDS]`: the fuzz targets `cargo xtask ci` runs for
//! 4 s each (`tests/tests/fuzz.rs`, the server's multipart parser), run
//! for SECONDS each (default 60). Findings are saved under
//! `target/fuzz-findings/`; see docs/reliability.md.

use crate::models;
use crate::process::{cargo, sh};
use anyhow::Context;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .with_context(|| format!("SECONDS must be a whole number, got '{s}'"))?,
        None => 60,
    };
    // The GGUF target is seeded with the real SmolLM2 file.
    let smollm2 = models::smollm2_gguf()?;
    let fuzz = |args: &[&str]| {
        let mut command = cargo();
        command
            .arg("test")
            .args(args)
            .env("IPFS_ACCELERATE_FUZZ_SECONDS", seconds.to_string())
            .env("IPFS_ACCELERATE_SMOLLM2_GGUF", &smollm2)
            .env("IPFS_ACCELERATE_REQUIRE_ALL", "1");
        sh(&mut command)
    };
    // One target at a time: each sets the process's panic hook while it
    // runs, and gets both cores. `--nocapture` shows each target's count
    // of inputs.
    fuzz(&[
        "-p",
        "ipfs-accelerate-tests",
        "--test",
        "fuzz",
        "--",
        "--test-threads=1",
        "--nocapture",
    ])?;
    fuzz(&[
        "-p",
        "ipfs-accelerate-server",
        "--lib",
        "fuzz",
        "--",
        "--test-threads=1",
        "--nocapture",
    ])?;
    eprintln!("fuzz: no findings ({seconds} s per target)");
    Ok(())
}
