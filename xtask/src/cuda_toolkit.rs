//! A CUDA compiler for building the `cuda` feature where no CUDA toolkit is
//! installed: NVIDIA's PyPI wheels (nvcc, its front end and NVVM, the
//! runtime headers, CCCL), unpacked under `target/cuda-toolkit/`.
//!
//! Enough for candle's kernels to compile (nvcc to PTX and objects) and so
//! for `cargo check/clippy --features cuda`; running needs a GPU and its
//! driver, which this does not provide.

use crate::models::python;
use crate::process::{root, sh};
use anyhow::{bail, Context};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolkit release; the CUDA 12 wheels ship no `nvcc` driver, the
/// CUDA 13 ones do. 13.4 is the newest release cudarc 0.19 knows.
const VERSION: &str = "13.4.92";
/// `CUDARC_CUDA_VERSION` for it.
const CUDARC_VERSION: &str = "13040";
/// Compiled for when `CUDA_COMPUTE_CAP` is not set (no GPU to ask): Hopper,
/// the kind of GPU machine this project is lent.
const DEFAULT_COMPUTE_CAP: &str = "90";

/// The wheels, unpacked over one another into the same `nvidia/cu13` tree.
const PACKAGES: &[&str] = &[
    "nvidia-cuda-nvcc==13.4.92",
    "nvidia-nvvm==13.4.92",
    "nvidia-cuda-crt==13.4.92",
    "nvidia-cuda-runtime==13.4.92",
    // CCCL (thrust, cub, libcu++: `<nv/target>`) is versioned on its own.
    "nvidia-cuda-cccl==13.3.5.0.6",
];

/// An unpacked toolkit.
#[derive(Debug)]
pub struct Toolkit {
    /// The folder holding `bin/nvcc`, `include/`, `nvvm/`.
    pub root: PathBuf,
}

impl Toolkit {
    /// The environment a cargo build with `--features cuda` needs.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut path = OsString::from(self.root.join("bin"));
        if let Some(existing) = std::env::var_os("PATH") {
            path.push(":");
            path.push(existing);
        }
        let compute_cap = std::env::var_os("CUDA_COMPUTE_CAP")
            .unwrap_or_else(|| OsString::from(DEFAULT_COMPUTE_CAP));
        vec![
            ("PATH", path),
            ("CUDA_ROOT", self.root.clone().into_os_string()),
            ("CUDA_PATH", self.root.clone().into_os_string()),
            ("CUDA_COMPUTE_CAP", compute_cap),
            ("CUDARC_CUDA_VERSION", OsString::from(CUDARC_VERSION)),
        ]
    }

    /// `command` with [`Self::env`] applied.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.envs(self.env())
    }
}

/// The toolkit, downloading and unpacking the wheels on first use.
pub fn install() -> anyhow::Result<Toolkit> {
    let base = root().join("target").join("cuda-toolkit");
    let unpacked = base.join(VERSION);
    let toolkit = Toolkit {
        root: unpacked.join("nvidia").join("cu13"),
    };
    if toolkit.root.join("bin").join("nvcc").is_file() {
        return Ok(toolkit);
    }
    let wheels = base.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    eprintln!("fetching the CUDA {VERSION} compiler from PyPI (once)");
    sh(Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&wheels)
        .args(PACKAGES))
    .context("pip download of the CUDA toolkit wheels failed")?;
    // Unpack into a temp folder and rename, so a killed run leaves no half toolkit.
    let partial = base.join(format!("{VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    for package in PACKAGES {
        let wheel = wheel_for(&wheels, package)?;
        sh(Command::new(python())
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&partial))?;
    }
    // Zip archives keep no permissions: the tools must be executable.
    let partial_root = partial.join("nvidia").join("cu13");
    for dir in ["bin", "nvvm/bin"] {
        make_executable(&partial_root.join(dir))?;
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&partial, &unpacked)?;
    if !toolkit.root.join("bin").join("nvcc").is_file() {
        bail!(
            "the CUDA wheels held no bin/nvcc under {}",
            toolkit.root.display()
        );
    }
    Ok(toolkit)
}

/// The downloaded wheel of `name==version`.
fn wheel_for(dir: &Path, requirement: &str) -> anyhow::Result<PathBuf> {
    let (name, version) = requirement
        .split_once("==")
        .context("requirements are pinned")?;
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

fn make_executable(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// `cargo xtask setup-cuda`: installs the toolkit and prints the shell lines
/// that put it to use.
pub fn run() -> anyhow::Result<()> {
    let toolkit = install()?;
    for (key, value) in toolkit.env() {
        // The lines are the command's output, for `eval "$(...)"`.
        #[allow(clippy::print_stdout)]
        {
            println!("export {key}={}", shell_quote(&value.to_string_lossy()));
        }
    }
    Ok(())
}

pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}
