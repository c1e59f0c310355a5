//! QEMU's user-mode emulator for x86-64 (Debian's static build,
//! `qemu-user-static`), so the tests can run the binary on an emulated CPU
//! without AVX-512 (`-cpu Haswell`: AVX2, FMA, F16C) and check which
//! kernels it picks there. Downloaded with `apt-get download` and unpacked
//! into `target/qemu/` with `dpkg-deb -x`: no system-wide install, no root.

use crate::process::{root, sh};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::Command;

/// The emulator, fetched on first use: `target/qemu/usr/bin/qemu-x86_64-static`.
pub fn install() -> anyhow::Result<PathBuf> {
    let dir = root().join("target").join("qemu");
    let emulator = dir.join("usr/bin/qemu-x86_64-static");
    if emulator.is_file() {
        return Ok(emulator);
    }
    // Download and unpack beside, then rename: a killed run leaves no half
    // install that looks whole.
    let partial = root().join("target").join("qemu.partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    sh(Command::new("apt-get")
        .args(["download", "qemu-user-static"])
        .current_dir(&partial))
    .context("apt-get download qemu-user-static (Debian's package, for the test on a CPU without AVX-512)")?;
    let deb = std::fs::read_dir(&partial)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download left no .deb")?;
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::remove_file(&deb)?;
    if !partial.join("usr/bin/qemu-x86_64-static").is_file() {
        bail!("{} has no usr/bin/qemu-x86_64-static", deb.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir)?;
    Ok(emulator)
}
