//! The official OpenAI Python client (`openai` from PyPI) in its own
//! virtual environment under `target/`, for the test that runs it against
//! our server (`crates/cli/tests/openai_client.rs` with
//! `crates/cli/tests/openai_client.py`). Never a system-wide install.

use crate::models::python;
use crate::process::sh;
use anyhow::Context;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The pinned client version the test was written against.
const OPENAI: &str = "openai==3.63.0";

/// The venv's Python with `openai` installed (made once, reused).
pub fn install() -> anyhow::Result<PathBuf> {
    let venv = crate::process::root().join("target").join("openai-venv");
    let bin = venv.join("bin").join("python");
    let wanted = OPENAI.trim_start_matches("openai==");
    let has_it = Command::new(&bin)
        .args(["-c", "import openai; print(openai.__version__)"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == wanted);
    if has_it {
        return Ok(bin);
    }
    sh(Command::new(python()).args(["-m", "venv"]).arg(&venv))
        .with_context(|| format!("cannot create the virtual environment {}", venv.display()))?;
    sh(Command::new(&bin).args(["-m", "pip", "install", "--quiet", OPENAI]))
        .with_context(|| format!("pip install {OPENAI} failed"))?;
    Ok(bin)
}
