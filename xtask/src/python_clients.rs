//! Real Python clients the interop tests drive, each pinned, in its own
//! virtual environment under `target/` (never a system-wide install):
//! `huggingface_hub` for the Hub cache tests (`crates/cli/tests/hub_download.rs`)
//! and the official `openai` client for the server test
//! (`crates/cli/tests/openai_client.rs`).

use crate::models::python;
use crate::process::sh;
use anyhow::Context;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A client package, pinned to the version its tests were written against.
struct Client {
    /// The venv's folder under `target/`.
    venv: &'static str,
    /// What Python imports.
    module: &'static str,
    /// The pip requirement, `name==version`.
    requirement: &'static str,
}

const HUGGINGFACE_HUB: Client = Client {
    venv: "hf-hub-venv",
    module: "huggingface_hub",
    requirement: "huggingface_hub==2.4.0",
};

const OPENAI: Client = Client {
    venv: "openai-venv",
    module: "openai",
    requirement: "openai==3.63.0",
};

/// The venv's Python with `huggingface_hub` installed (made once, reused).
pub fn hf_hub() -> anyhow::Result<PathBuf> {
    install(&HUGGINGFACE_HUB)
}

/// The venv's Python with `openai` installed (made once, reused).
pub fn openai() -> anyhow::Result<PathBuf> {
    install(&OPENAI)
}

fn install(client: &Client) -> anyhow::Result<PathBuf> {
    let venv = crate::process::root().join("target").join(client.venv);
    let bin = venv.join("bin").join("python");
    let wanted = client
        .requirement
        .split_once("==")
        .map_or("", |(_, version)| version);
    let probe = format!("import {0}, sys; print({0}.__version__)", client.module);
    let has_it = Command::new(&bin)
        .args(["-c", &probe])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == wanted);
    if has_it {
        return Ok(bin);
    }
    sh(Command::new(python()).args(["-m", "venv"]).arg(&venv))
        .with_context(|| format!("cannot create the virtual environment {}", venv.display()))?;
    sh(Command::new(&bin).args(["-m", "pip", "install", "--quiet", client.requirement]))
        .with_context(|| format!("pip install {} failed", client.requirement))?;
    Ok(bin)
}
