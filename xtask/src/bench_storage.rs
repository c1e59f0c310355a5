//! `cargo xtask bench storage`: the IPFS layer against plain tools on the
//! same node, in the same run.
//!
//! * add: `ipfs-accelerate cache publish` of a 100 MB snapshot vs `curl`
//!   posting the same folder to the node's `add` (each on a fresh node, so
//!   neither finds the blocks already there);
//! * pull: `ipfs-accelerate cache pull` into an empty cache (fetch, hash,
//!   verify, store) vs `curl` `cat` of every file to disk;
//! * warm hit: `Store::get` (re-hashes the blob: the price of never serving
//!   a corrupt file) vs a plain read of the same file.
//!
//! `BENCH_STORAGE_MB` sets the size (default 100); `BENCH_STORAGE_BIN` a
//! prebuilt binary instead of `cargo build --release`.

use crate::process::{output, root, sh};
use anyhow::{bail, Context};
use ipfs_accelerate_storage::Store;
use ipfs_accelerate_tests::ipfs_node::{self, Daemon};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn run() -> anyhow::Result<()> {
    let mb: usize = std::env::var("BENCH_STORAGE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let install = ipfs_node::node_dir();
    if !ipfs_node::is_installed(&install) {
        bail!("no IPFS node installed: run `cargo xtask ipfs-node start` once");
    }
    let bin = match std::env::var_os("BENCH_STORAGE_BIN") {
        Some(b) => PathBuf::from(b),
        None => crate::process::build_release_cli()?,
    };
    let work = root().join("target/bench-storage");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let model = make_snapshot(&work, mb)?;
    let bytes = dir_bytes(&model)?;
    let mbytes = bytes as f64 / 1e6;

    // Host A's cache holds the snapshot (import is not timed).
    let cache_a = work.join("cache-a");
    let imported = json(
        Command::new(&bin)
            .args(["--cache-dir"])
            .arg(&cache_a)
            .args(["cache", "import", "--as", "bench/model", "--json"])
            .arg(&model),
    )?;
    let root_cid = imported["root_cid"]
        .as_str()
        .context("no root_cid")?
        .to_owned();

    // add: ours, then curl, each on a fresh node.
    let node = start(&install, &work, "add-ours")?;
    let t = Instant::now();
    let published = json(
        Command::new(&bin)
            .env("IPFS_API_URL", node.api())
            .arg("--cache-dir")
            .arg(&cache_a)
            .args(["cache", "publish", "bench/model", "--json"]),
    )?;
    let add_ours = t.elapsed();
    if published["root_cid"] != root_cid.as_str() {
        bail!("publish answered {published}");
    }
    drop(node);
    let node = start(&install, &work, "add-curl")?;
    let t = Instant::now();
    let curl_root = curl_add(node.api(), &model)?;
    let add_curl = t.elapsed();
    if curl_root != root_cid {
        bail!("curl add gave root {curl_root}, we compute {root_cid}");
    }

    // pull: the node now holds the snapshot (from the curl add).
    let cache_b = work.join("cache-b");
    let t = Instant::now();
    json(
        Command::new(&bin)
            .env("IPFS_API_URL", node.api())
            .arg("--cache-dir")
            .arg(&cache_b)
            .args(["cache", "pull", &root_cid, "--as", "bench/model", "--json"]),
    )?;
    let pull_ours = t.elapsed();
    let t = Instant::now();
    curl_cat_all(node.api(), &imported, &work.join("curl-out"))?;
    let pull_curl = t.elapsed();
    drop(node);

    // Warm cache hit vs a plain read of the biggest file.
    let store = Store::open(&cache_b)?;
    let manifest = store
        .manifest("bench/model", "main")?
        .context("pulled manifest missing")?;
    let big = manifest
        .files
        .iter()
        .max_by_key(|f| f.size)
        .context("empty snapshot")?;
    let hit = median(5, || {
        let path = store.get(&big.sha256)?;
        let _ = std::fs::read(path)?;
        Ok(())
    })?;
    let plain_path = store.blob_path(&big.sha256);
    let plain = median(5, || {
        let _ = std::fs::read(&plain_path)?;
        Ok(())
    })?;

    let rate = |d: Duration| mbytes / d.as_secs_f64();
    eprintln!(
        "\nstorage, {mbytes:.1} MB snapshot ({} files), same node, same run:",
        manifest.files.len()
    );
    eprintln!(
        "  add   ours (cache publish): {:7.1} MB/s   curl add: {:7.1} MB/s   ratio {:.2}",
        rate(add_ours),
        rate(add_curl),
        add_curl.as_secs_f64() / add_ours.as_secs_f64()
    );
    eprintln!(
        "  pull  ours (cache pull):    {:7.1} MB/s   curl cat: {:7.1} MB/s   ratio {:.2}",
        rate(pull_ours),
        rate(pull_curl),
        pull_curl.as_secs_f64() / pull_ours.as_secs_f64()
    );
    eprintln!(
        "  warm hit of {:.1} MB: Store::get + read {:.1} ms, plain read {:.1} ms ({:.1}x)",
        big.size as f64 / 1e6,
        hit.as_secs_f64() * 1e3,
        plain.as_secs_f64() * 1e3,
        hit.as_secs_f64() / plain.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn start(install: &Path, work: &Path, name: &str) -> anyhow::Result<Daemon> {
    Daemon::start(
        install,
        &work.join(format!("repo-{name}")),
        &work.join(format!("daemon-{name}.log")),
        Duration::from_secs(120),
    )
    .with_context(|| format!("cannot start the IPFS node ({name})"))
}

/// A model-like folder: a config, a tokenizer-sized file and one big
/// incompressible weights file.
fn make_snapshot(work: &Path, mb: usize) -> anyhow::Result<PathBuf> {
    let model = work.join("model");
    std::fs::create_dir_all(&model)?;
    std::fs::write(model.join("config.json"), b"{\"model_type\":\"bert\"}\n")?;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    };
    std::fs::write(model.join("tokenizer.json"), noise(700_000))?;
    std::fs::write(model.join("model.safetensors"), noise(mb * 1_000_000))?;
    Ok(model)
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

fn json(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = output(cmd)?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// `curl` posting the folder as `ipfs add -r` would, same settings.
fn curl_add(api: &str, model: &Path) -> anyhow::Result<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-X", "POST"]);
    cmd.args([
        "-F",
        "file=@/dev/null;filename=snapshot;type=application/x-directory",
    ]);
    let mut names: Vec<_> = std::fs::read_dir(model)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        cmd.arg("-F").arg(format!(
            "file=@{};filename=snapshot/{name}",
            model.join(&name).display()
        ));
    }
    cmd.arg(format!(
        "{api}/api/v0/add?cid-version=0&raw-leaves=false&chunker=size-262144&pin=true&progress=false"
    ));
    let out = output(&mut cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["Name"] == "snapshot" {
            return Ok(v["Hash"].as_str().unwrap_or_default().to_owned());
        }
    }
    bail!("curl add answered no root: {text}")
}

/// `curl` `cat` of every file of the manifest to disk.
fn curl_cat_all(api: &str, manifest: &serde_json::Value, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for f in manifest["files"].as_array().context("no files")? {
        let cid = f["cid"].as_str().context("no cid")?;
        sh(Command::new("curl")
            .args(["-sS", "--fail", "-X", "POST", "-o"])
            .arg(out.join(cid))
            .arg(format!("{api}/api/v0/cat?arg={cid}&timeout=60s")))?;
    }
    Ok(())
}

fn median(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[n / 2])
}
