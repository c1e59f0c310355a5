//! Small filesystem helpers: unique temp names and atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds since the epoch; only used to make names unique.
pub(crate) fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Create a new, uniquely named file in `dir`. The pid and a process-wide
/// counter keep concurrent writers (threads or processes) apart.
pub(crate) fn create_temp(dir: &Path) -> Result<(PathBuf, File)> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{}-{}.part", std::process::id(), n, nanos()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .at(&path)?;
    Ok((path, file))
}

/// Removes a temp file on drop unless it was moved into place.
#[derive(Debug)]
pub(crate) struct TempGuard(pub(crate) Option<PathBuf>);

impl TempGuard {
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = fs::remove_file(&path) {
                tracing::debug!(path = %path.display(), error = %e, "could not remove temp file");
            }
        }
    }
}

/// Make a rename durable; best effort since not every platform or
/// filesystem supports syncing a folder.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write `bytes` to `dest` atomically: temp file in `tmp_dir` (same
/// filesystem), rename. Readers see the old or the new file, never a
/// partial one. `durable` adds fsyncs so the new file also survives a
/// crash; counters that may be lost skip that cost.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let (tmp, mut file) = create_temp(tmp_dir)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    file.write_all(bytes).at(&tmp)?;
    if durable {
        file.sync_all().at(&tmp)?;
    }
    drop(file);
    fs::rename(&tmp, dest).at(dest)?;
    guard.disarm();
    if let (true, Some(parent)) = (durable, dest.parent()) {
        sync_dir(parent);
    }
    Ok(())
}
