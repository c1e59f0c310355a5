//! Cross-process advisory locks, so two processes never fetch or write the
//! same model at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};
use crate::Store;

/// An exclusive lock on `locks/<key>.lock`, released on drop.
///
/// Locks are per open file, so they also exclude threads of the same
/// process. They are not reentrant: taking the same key twice on one thread
/// deadlocks.
///
/// In a cache this process cannot write (a read-only mount, another user's
/// files) there is nothing to protect: no writer can be racing through this
/// process, so the guard holds no lock and reads go ahead.
#[derive(Debug)]
pub struct LockGuard {
    file: Option<File>,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(file) = &self.file else {
            return;
        };
        if let Err(e) = file.unlock() {
            tracing::warn!(path = %self.path.display(), error = %e, "failed to unlock");
        }
    }
}

/// File name for a caller's key. Unsafe characters (`/`, `@`, ...) become
/// `_`; a hash of the full key keeps distinct keys apart (`a/b` vs `a_b`)
/// and bounds the length. Never starts with '.', which is reserved for the
/// store's internal locks so they cannot collide with a caller's.
pub(crate) fn lock_file_name(key: &str) -> String {
    let mut safe: String = key
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{safe}-{}.lock", &digest[..16])
}

impl Store {
    /// Take the exclusive lock for `key` (any string, e.g. `org/name@rev`),
    /// waiting as long as another holder keeps it.
    pub fn lock(&self, key: &str) -> Result<LockGuard> {
        self.lock_path(self.root().join("locks").join(lock_file_name(key)))
    }

    /// Take the lock for `key` only if it is free right now.
    pub fn try_lock(&self, key: &str) -> Result<Option<LockGuard>> {
        let path = self.root().join("locks").join(lock_file_name(key));
        let Some(file) = open_lock_file(&path)? else {
            return Ok(Some(LockGuard { file: None, path }));
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard {
                file: Some(file),
                path,
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e).at(&path),
        }
    }

    /// A lock private to the store (manifest and stats updates); its file
    /// name starts with '.' so no caller key maps to it.
    pub(crate) fn internal_lock(&self, name: &str) -> Result<LockGuard> {
        let file_name = format!(".{}", lock_file_name(name));
        self.lock_path(self.root().join("locks").join(file_name))
    }

    fn lock_path(&self, path: PathBuf) -> Result<LockGuard> {
        let Some(file) = open_lock_file(&path)? else {
            return Ok(LockGuard { file: None, path });
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                tracing::info!(path = %path.display(), "waiting for lock held by another process");
                file.lock().at(&path)?;
            }
            Err(TryLockError::Error(e)) => return Err(e).at(&path),
        }
        Ok(LockGuard {
            file: Some(file),
            path,
        })
    }
}

/// The lock file, created if needed; `None` when the cache is not writable
/// by this process and the file does not exist (then there is nothing to
/// lock against). An existing lock file is locked even when read-only:
/// `flock` works on a read-only handle.
fn open_lock_file(path: &Path) -> Result<Option<File>> {
    // Lock files are never deleted: removing one while another process
    // waits on it would let two holders in.
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    match created {
        Ok(file) => Ok(Some(file)),
        Err(e) if not_writable(&e) => match File::open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "cache not writable: reading without a lock");
                Ok(None)
            }
            Err(e) => Err(e).at(path),
        },
        Err(e) => Err(e).at(path),
    }
}

fn not_writable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn names_are_safe_and_distinct() {
        let a = lock_file_name("org/name@rev");
        assert!(a.starts_with("org_name_rev-"), "{a}");
        assert_ne!(a, lock_file_name("org_name_rev"));
        assert!(!lock_file_name("../../etc").contains('/'));
        assert!(!lock_file_name(".hidden").starts_with('.'));
        assert!(lock_file_name(&"x".repeat(1000)).len() < 120);
    }

    #[test]
    fn lock_excludes_other_holders() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let guard = store.lock("org/model@main").unwrap();
        assert!(store.try_lock("org/model@main").unwrap().is_none());
        assert!(store.try_lock("org/other@main").unwrap().is_some());

        let released = Arc::new(AtomicBool::new(false));
        let (s2, r2) = (store.clone(), released.clone());
        let waiter = std::thread::spawn(move || {
            let _g = s2.lock("org/model@main").unwrap();
            // Must only get here once the first guard is gone.
            assert!(r2.load(Ordering::SeqCst));
        });
        std::thread::sleep(Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(guard);
        waiter.join().unwrap();
        assert!(store.try_lock("org/model@main").unwrap().is_some());
    }
}
