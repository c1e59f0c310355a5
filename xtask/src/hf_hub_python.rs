//! The real Python Hub client (`huggingface_hub` from PyPI) in its own
//! virtual environment under `target/`, for the tests that check our Hub
//! cache against it in both directions (`crates/cli/tests/hub_download.rs`).
//! Never a system-wide install.

use crate::models::python;
use crate::process::sh;
use anyhow::Context;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The pinned client version the tests were written against.
const HUGGINGFACE_HUB: &str = "huggingface_hub==2.4.0";

/// The venv's Python with `huggingface_hub` installed (made once, reused).
pub fn install() -> anyhow::Result<PathBuf> {
    let venv = crate::process::root().join("target").join("hf-hub-venv");
    let bin = venv.join("bin").join("python");
    let wanted = HUGGINGFACE_HUB.trim_start_matches("huggingface_hub==");
    let has_it = Command::new(&bin)
        .args([
            "-c",
            "import huggingface_hub, sys; print(huggingface_hub.__version__)",
        ])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == wanted);
    if has_it {
        return Ok(bin);
    }
    sh(Command::new(python()).args(["-m", "venv"]).arg(&venv))
        .with_context(|| format!("cannot create the virtual environment {}", venv.display()))?;
    sh(Command::new(&bin).args(["-m", "pip", "install", "--quiet", HUGGINGFACE_HUB]))
        .with_context(|| format!("pip install {HUGGINGFACE_HUB} failed"))?;
    Ok(bin)
}
