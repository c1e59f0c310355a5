//! `cargo xtask bench [embed|serve|storage|generate]`: criterion benchmarks on the real models, then
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
        "generate" => {
            let gguf = models::smollm2_gguf()?;
            sh(cargo()
                .args([
                    "bench",
                    "-p",
                    "ipfs-accelerate-skills",
                    "--bench",
                    "generate",
                    "--",
                ])
                .args(args.get(1..).unwrap_or_default())
                .env("IPFS_ACCELERATE_SMOLLM2_GGUF", &gguf)
                // The setting: 2 CPU threads.
                .env("RAYON_NUM_THREADS", "2"))?;
            summarize_generate()
        }
        other => {
            bail!("unknown benchmark '{other}' (available: embed, serve, storage, generate)")
        }
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

fn summarize_generate() -> anyhow::Result<()> {
    let prefill = mean_seconds("generate_smollm2", "prefill_128")?;
    let one = mean_seconds("generate_smollm2", "decode_1")?;
    let many = mean_seconds("generate_smollm2", "decode_64")?;
    let path = root().join("target/criterion/generate_smollm2/run.json");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("the bench wrote no {}", path.display()))?,
    )?;
    let count = |key: &str| run[key].as_f64().context("run.json lacks token counts");
    let prefill_tokens = count("prefill_tokens")?;
    let decode_tokens = count("decode_tokens")?;
    let decode_rate = (decode_tokens - 1.0) / (many - one);
    eprintln!("\nSmolLM2-135M-Instruct Q4_1 (GGUF), candle CPU, 2 threads (same run):");
    eprintln!(
        "  prompt processing ({prefill_tokens} tokens): {:8.1} tokens/s  ({:.1} ms)",
        prefill_tokens / prefill,
        prefill * 1e3
    );
    eprintln!(
        "  decode ({decode_tokens} tokens after a {}-token chat prompt): {:6.1} tokens/s",
        run["chat_prompt_tokens"], decode_rate
    );
    eprintln!(
        "  prompt / decode speed:       {:8.1}x",
        (prefill_tokens / prefill) / decode_rate
    );
    if let (Some(peak), Some(file)) = (run["peak_rss_bytes"].as_f64(), run["gguf_bytes"].as_f64()) {
        eprintln!(
            "  peak resident memory:        {:8.1} MiB ({:.2}x the {:.1} MiB GGUF file)",
            peak / 1048576.0,
            peak / file,
            file / 1048576.0
        );
    }
    Ok(())
}
