//! Real Python clients the interop tests drive, each pinned, in its own
//! virtual environment under `target/` (never a system-wide install):
//! `huggingface_hub` for the Hub cache tests (`crates/cli/tests/hub_download.rs`)
//! the official `openai` client for the server test
//! (`crates/cli/tests/openai_client.rs`), and the subtitle parsers `srt` and
//! `webvtt-py` that read `transcribe --format srt|vtt`
//! (`crates/cli/tests/transcribe_long.rs`).

use crate::models::python;
use crate::process::sh;
use anyhow::Context;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Client packages, pinned to the versions their tests were written
/// against.
pub(crate) struct Client {
    /// The venv's folder under `target/`.
    pub venv: &'static str,
    /// The pip requirements, `name==version`.
    pub requirements: &'static [&'static str],
}

const HUGGINGFACE_HUB: Client = Client {
    venv: "hf-hub-venv",
    requirements: &["huggingface_hub==2.4.0"],
};

const OPENAI: Client = Client {
    venv: "openai-venv",
    requirements: &["openai==3.63.0"],
};

/// PyTorch eager and transformers, the reference of the long-form
/// transcription bench row (`cargo xtask bench multimodal`); not used by
/// the tests.
const TORCH: Client = Client {
    venv: "torch-venv",
    requirements: &[
        "torch==2.15.0",
        "transformers==4.57.6",
        "numpy==2.4.6",
        "pillow==13.0.0",
    ],
};

const SUBTITLES: Client = Client {
    venv: "subtitles-venv",
    requirements: &["srt==3.5.3", "webvtt-py==0.6.0"],
};

/// The venv's Python with `huggingface_hub` installed (made once, reused).
pub fn hf_hub() -> anyhow::Result<PathBuf> {
    install(&HUGGINGFACE_HUB)
}

/// The venv's Python with `openai` installed (made once, reused).
pub fn openai() -> anyhow::Result<PathBuf> {
    install(&OPENAI)
}

/// The venv's Python with `torch` and `transformers` installed (made
/// once, reused).
pub fn torch() -> anyhow::Result<PathBuf> {
    install(&TORCH)
}

/// The venv's Python with `srt` and `webvtt-py` installed (made once,
/// reused).
pub fn subtitles() -> anyhow::Result<PathBuf> {
    install(&SUBTITLES)
}

/// The venv's Python for `client`, made (or remade) when the pinned
/// versions are not the ones installed.
pub(crate) fn install(client: &Client) -> anyhow::Result<PathBuf> {
    let venv = crate::process::root().join("target").join(client.venv);
    let bin = venv.join("bin").join("python");
    let (names, versions): (Vec<&str>, Vec<&str>) = client
        .requirements
        .iter()
        .map(|r| r.split_once("==").unwrap_or((r, "")))
        .unzip();
    // The installed distributions' versions, as pip recorded them.
    let probe =
        format!("import importlib.metadata as m; print(' '.join(m.version(n) for n in {names:?}))");
    let has_them = Command::new(&bin)
        .args(["-c", &probe])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| {
            let found = String::from_utf8_lossy(&o.stdout);
            let found: Vec<&str> = found.split_whitespace().collect();
            // A local version label (torch's `2.15.0+cu132`) is the same
            // release.
            o.status.success()
                && found.len() == versions.len()
                && found.iter().zip(&versions).all(|(got, want)| {
                    got == want
                        || got
                            .strip_prefix(want)
                            .is_some_and(|rest| rest.starts_with('+'))
                })
        });
    if has_them {
        return Ok(bin);
    }
    sh(Command::new(python()).args(["-m", "venv"]).arg(&venv))
        .with_context(|| format!("cannot create the virtual environment {}", venv.display()))?;
    sh(Command::new(&bin)
        .args(["-m", "pip", "install", "--quiet", "--no-cache-dir"])
        .args(client.requirements))
    .with_context(|| format!("pip install {} failed", client.requirements.join(" ")))?;
    Ok(bin)
}
