//! Small filesystem helpers: unique temp names and atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
/// counter keep concurrent writers (threads or processes) apart. The file
/// is locked while its handle lives, so [`sweep_stale_temp_files`] can tell
/// a live writer's file from one a killed process left behind; writers keep
/// the handle open until the file is renamed into place.
pub(crate) fn create_temp(dir: &Path) -> Result<(PathBuf, File)> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{}-{}.part", std::process::id(), n, nanos()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .at(&path)?;
    // Ours alone: it was just created.
    let _ = file.try_lock();
    Ok((path, file))
}

/// Temp files younger than this are left alone whatever their lock: a
/// writer takes its lock just after creating the file.
const TEMP_GRACE: Duration = Duration::from_secs(2);

/// Removes the `*.part` files in `dir` that no live writer holds (a process
/// killed mid-write leaves its file unlocked). Best effort: returns how many
/// were removed; a file it cannot examine stays.
pub(crate) fn sweep_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "part") {
            continue;
        }
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < TEMP_GRACE));
        if young {
            continue;
        }
        let Ok(file) = OpenOptions::new().read(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "removed a stale temporary file");
            removed += 1;
        }
    }
    removed
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
    // Renamed while still open (and locked): never swept as stale.
    fs::rename(&tmp, dest).at(dest)?;
    guard.disarm();
    drop(file);
    if let (true, Some(parent)) = (durable, dest.parent()) {
        sync_dir(parent);
    }
    Ok(())
}
