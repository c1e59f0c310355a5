//! `cargo xtask bench [embed|serve|serve-load|storage|generate|multimodal|long-form|models]`: criterion benchmarks
//! on the real models, then a summary with the ratios the issues ask for
//! (all from the same run).

use crate::models;
use crate::process::{cargo, root, sh};
use anyhow::{bail, Context};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let which = args.first().map_or("embed", String::as_str);
    let extra = args.get(1..).unwrap_or_default();
    match which {
        "embed" => {
            let minilm = models::minilm()?;
            sh(skills_bench("embed", extra).env("IPFS_ACCELERATE_MINILM_DIR", &minilm))?;
            summarize_embed()?;
            crate::bench_embed_onnx::run(extra)
        }
        // The ONNX rows alone (also part of `embed`).
        "embed-onnx" => crate::bench_embed_onnx::run(extra),
        "serve" => {
            let minilm = models::minilm()?;
            let smollm2 = models::smollm2_gguf()?;
            sh(cargo()
                .args(["bench", "-p", "ipfs-accelerate-server", "--bench", "serve"])
                .env("IPFS_ACCELERATE_MINILM_DIR", &minilm)
                .env("IPFS_ACCELERATE_SMOLLM2_GGUF", &smollm2))
        }
        // The binary's server under 64 clients and 2,000 requests (fixture
        // model; once a test in crates/cli/tests/serve.rs).
        "serve-load" => sh(cargo().args([
            "bench",
            "-p",
            "ipfs-accelerate-cli",
            "--bench",
            "serve_load",
        ])),
        "storage" => crate::bench_storage::run(),
        // GGUF generation against llama.cpp (llama-cpp-python).
        "generate" => crate::bench_generate::run(extra),
        "multimodal" => {
            // The setting: 2 CPU threads; fixture models only.
            sh(skills_bench("multimodal", extra).env("RAYON_NUM_THREADS", "2"))?;
            summarize_multimodal()?;
            crate::bench_long_form::run()
        }
        // The long-form transcription row alone (also part of `multimodal`).
        "long-form" => crate::bench_long_form::run(),
        // Every family with an ONNX path at real size, every backend, PyTorch.
        "models" => crate::bench_models::run(extra),
        other => {
            bail!(
                "unknown benchmark '{other}' (available: embed, embed-onnx, serve, serve-load, storage, generate, multimodal, long-form, models)"
            )
        }
    }
}

/// `cargo bench` of one criterion bench of the skills crate, passing `extra`
/// to criterion.
pub(crate) fn skills_bench(bench: &str, extra: &[String]) -> std::process::Command {
    let mut command = cargo();
    command
        .args([
            "bench",
            "-p",
            "ipfs-accelerate-skills",
            "--bench",
            bench,
            "--",
        ])
        .args(extra);
    command
}

/// Mean time per iteration in seconds, from criterion's estimates.
pub(crate) fn mean_seconds(group: &str, bench: &str) -> anyhow::Result<f64> {
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

/// What a fixture's `_preprocess` bench times, by the front end its
/// `preprocessor_config.json` names (as `benches/multimodal.rs` picks it).
fn preprocessing_step(fixture: &str) -> &'static str {
    let config = root()
        .join("fixtures/models")
        .join(fixture)
        .join("preprocessor_config.json");
    let config: serde_json::Value = std::fs::read_to_string(config)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let kind = config["feature_extractor_type"]
        .as_str()
        .or_else(|| config["image_processor_type"].as_str());
    match kind {
        Some("WhisperFeatureExtractor") => "resample + log-mel",
        Some("Wav2Vec2FeatureExtractor") => "normalisation",
        Some("ClapFeatureExtractor") => "resample + CLAP log-mel",
        Some("LlavaNextImageProcessor") => "any-resolution tiling",
        Some("VideoMAEImageProcessor") => "frames resize + crop + normalise",
        _ => "resize + crop + normalise",
    }
}

fn summarize_multimodal() -> anyhow::Result<()> {
    eprintln!("\nOne request per skill, fixture models, candle CPU, 2 threads (same run):");
    eprintln!("  skill        request ms   preprocessing ms   share   preprocessing");
    // The families the bench measured (it runs the family table's
    // multimodal rows), in its order.
    let group = root().join("target/criterion/multimodal");
    let mut measured: Vec<String> = std::fs::read_dir(&group)
        .with_context(|| format!("no criterion results at {}", group.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix("_request").map(str::to_owned)
        })
        .collect();
    measured.sort();
    for skill in &measured {
        let request = mean_seconds("multimodal", &format!("{skill}_request"))?;
        let pre = mean_seconds("multimodal", &format!("{skill}_preprocess"))?;
        eprintln!(
            "  {skill:<11} {:11.3} {:18.3} {:6.0}%   {}",
            request * 1e3,
            pre * 1e3,
            100.0 * pre / request,
            preprocessing_step(skill)
        );
    }
    Ok(())
}
