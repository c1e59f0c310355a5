//! `cargo xtask bench [embed]`: criterion benchmarks on the real model, then
//! a summary with the ratios the issues ask for (all from the same run).

use crate::models;
use crate::process::{cargo, root, sh};
use anyhow::{bail, Context};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let which = args.first().map_or("embed", String::as_str);
    match which {
        "embed" => {
            let minilm = models::minilm()?;
            sh(cargo()
                .args([
                    "bench",
                    "-p",
                    "ipfs-accelerate-skills",
                    "--bench",
                    "embed",
                    "--",
                ])
                .args(args.get(1..).unwrap_or_default())
                .env("IPFS_ACCELERATE_MINILM_DIR", &minilm))?;
            summarize_embed()
        }
        "serve" => {
            let minilm = models::minilm()?;
            sh(cargo()
                .args(["bench", "-p", "ipfs-accelerate-server", "--bench", "serve"])
                .env("IPFS_ACCELERATE_MINILM_DIR", &minilm))
        }
        "storage" => crate::bench_storage::run(),
        other => bail!("unknown benchmark '{other}' (available: embed, serve, storage)"),
    }
}

/// Mean time per iteration in seconds, from criterion's estimates.
fn mean_seconds(group: &str, bench: &str) -> anyhow::Result<f64> {
    let path = root()
        .join("target/criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no criterion estimates at {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let ns = value["mean"]["point_estimate"]
        .as_f64()
        .context("estimates.json has no mean")?;
    Ok(ns * 1e-9)
}

fn summarize_embed() -> anyhow::Result<()> {
    let latency = mean_seconds("embed_latency", "one_short_sentence")?;
    let sorted = mean_seconds("embed_256_mixed_bs32", "sorted")?;
    let unsorted = mean_seconds("embed_256_mixed_bs32", "unsorted")?;
    eprintln!("\nall-MiniLM-L6-v2, candle CPU (same run):");
    eprintln!(
        "  one short sentence:        {:8.2} ms  ({:.1} sentences/s)",
        latency * 1e3,
        1.0 / latency
    );
    eprintln!(
        "  256 mixed, bs 32, unsorted: {:7.1} sentences/s",
        256.0 / unsorted
    );
    eprintln!(
        "  256 mixed, bs 32, sorted:   {:7.1} sentences/s",
        256.0 / sorted
    );
    eprintln!("  sorted / unsorted:          {:7.2}x", unsorted / sorted);
    Ok(())
}
