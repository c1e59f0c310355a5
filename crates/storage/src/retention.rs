//! What the cache keeps: pinned models, when each model was last used, and
//! `gc`, which frees space down to a size budget without touching pinned or
//! recently used models.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::Store;

/// Blobs younger than this are never collected as orphans: a loader may
/// have just stored one and not yet recorded it in a manifest.
const ORPHAN_GRACE: Duration = Duration::from_secs(600);

/// `retention.json`: pins and last use, keyed `id@revision`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Retention {
    #[serde(default)]
    pinned: BTreeSet<String>,
    /// Seconds since the epoch.
    #[serde(default)]
    last_used: BTreeMap<String, u64>,
}

/// What `gc` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Models whose manifests were removed (`id@revision`).
    pub removed_models: Vec<String>,
    /// Blobs deleted (no manifest referred to them any more).
    pub removed_blobs: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Bytes the cache's blobs hold now.
    pub kept_bytes: u64,
    /// Models kept because they are pinned.
    pub pinned: Vec<String>,
    /// Manifest files that could not be read. While there are any, no blob
    /// is deleted: one of them may refer to it.
    pub unreadable_manifests: Vec<crate::UnreadableFile>,
    /// Stale temporary files removed (left by killed writers).
    pub removed_temp_files: usize,
}

fn key(id: &str, revision: &str) -> String {
    format!("{id}@{revision}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    fn retention_path(&self) -> std::path::PathBuf {
        self.root().join("retention.json")
    }

    fn read_retention(&self) -> Result<Retention> {
        let path = self.retention_path();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StorageError::Json { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Retention::default()),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Read-modify-write under the lock. `durable` (pins) adds fsyncs; a
    /// lost last-use time only makes gc a little less precise.
    fn update_retention(&self, durable: bool, change: impl FnOnce(&mut Retention)) -> Result<()> {
        let _lock = self.internal_lock("retention")?;
        let mut r = self.read_retention()?;
        change(&mut r);
        let path = self.retention_path();
        let json = serde_json::to_vec_pretty(&r).map_err(|source| StorageError::Json {
            path: path.clone(),
            source,
        })?;
        fsutil::write_atomic(&self.tmp_dir(), &path, &json, durable)
    }

    /// Keep `id@revision` through every `gc`.
    pub fn pin(&self, id: &str, revision: &str) -> Result<()> {
        self.update_retention(true, |r| {
            r.pinned.insert(key(id, revision));
        })
    }

    /// Let `gc` collect `id@revision` again; false if it was not pinned.
    pub fn unpin(&self, id: &str, revision: &str) -> Result<bool> {
        let mut was = false;
        self.update_retention(true, |r| was = r.pinned.remove(&key(id, revision)))?;
        Ok(was)
    }

    /// Pinned models, as `id@revision`.
    pub fn pins(&self) -> Result<BTreeSet<String>> {
        Ok(self.read_retention()?.pinned)
    }

    /// Record that `id@revision` was just used. Advisory, like the
    /// counters: a failure is logged, never returned.
    /// Uses within a minute of the recorded one are not written again, so
    /// loading a model's files costs one write, not one per file.
    pub fn touch(&self, id: &str, revision: &str) {
        let k = key(id, revision);
        let now = now_secs();
        let recent = self.read_retention().is_ok_and(|r| {
            r.last_used
                .get(&k)
                .is_some_and(|t| now.saturating_sub(*t) < 60)
        });
        if recent {
            return;
        }
        if let Err(e) = self.update_retention(false, |r| {
            r.last_used.insert(k, now);
        }) {
            tracing::warn!(error = %e, "could not record cache use");
        }
    }

    /// Free space: remove unpinned models not used within `keep_recent`,
    /// least recently used first, until the blobs hold at most
    /// `max_bytes` (None: only unreferenced blobs go), then delete every
    /// blob no manifest refers to.
    pub fn gc(&self, max_bytes: Option<u64>, keep_recent: Duration) -> Result<GcReport> {
        let _lock = self.internal_lock("gc")?;
        let retention = self.read_retention()?;
        let scan = self.manifest_scan()?;
        let mut manifests = scan.manifests;
        let mut report = GcReport {
            unreadable_manifests: scan.unreadable,
            removed_temp_files: self.sweep_stale_temp_files(),
            ..GcReport::default()
        };
        for bad in &report.unreadable_manifests {
            tracing::warn!(path = %bad.path, "unreadable manifest; no blob is deleted: {}", bad.error);
        }
        let blob_sizes = self.blob_sizes()?;
        let total: u64 = blob_sizes.values().map(|(size, _)| size).sum();

        let now = now_secs();
        let last_use = |id: &str, rev: &str| -> u64 {
            retention
                .last_used
                .get(&key(id, rev))
                .copied()
                .unwrap_or_else(|| {
                    // Never loaded since recorded: its manifest's age stands in.
                    fs::metadata(self.manifest_path(id, rev))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_secs())
                })
        };
        manifests.sort_by_key(|m| last_use(&m.id, &m.revision));

        // Bytes referenced by the manifests still kept, blob by blob.
        let mut kept: BTreeMap<String, u64> = manifests
            .iter()
            .flat_map(|m| m.files.iter().map(|f| (f.sha256.clone(), f.size)))
            .collect();
        let referenced = |kept: &BTreeMap<String, u64>| kept.values().sum::<u64>();
        let mut remaining: Vec<_> = manifests.clone();
        let mut released = BTreeSet::new();
        if let Some(budget) = max_bytes {
            for m in &manifests {
                let k = key(&m.id, &m.revision);
                if retention.pinned.contains(&k) {
                    report.pinned.push(k);
                    continue;
                }
                if referenced(&kept) <= budget {
                    break;
                }
                if now.saturating_sub(last_use(&m.id, &m.revision)) < keep_recent.as_secs() {
                    continue;
                }
                self.remove_manifest(&m.id, &m.revision)?;
                released.extend(m.files.iter().map(|f| f.sha256.clone()));
                report.removed_models.push(k);
                remaining.retain(|r| !(r.id == m.id && r.revision == m.revision));
                kept = remaining
                    .iter()
                    .flat_map(|m| m.files.iter().map(|f| (f.sha256.clone(), f.size)))
                    .collect();
            }
        }
        for (sha, (size, modified)) in &blob_sizes {
            if kept.contains_key(sha) || !report.unreadable_manifests.is_empty() {
                continue;
            }
            let young = modified.elapsed().is_ok_and(|age| age < ORPHAN_GRACE);
            if young && !released.contains(sha) {
                continue;
            }
            let path = self.blob_path(sha);
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.removed_blobs += 1;
                    report.freed_bytes += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&path),
            }
        }
        report.kept_bytes = total - report.freed_bytes;
        tracing::info!(
            removed_models = report.removed_models.len(),
            removed_blobs = report.removed_blobs,
            freed = report.freed_bytes,
            "cache gc"
        );
        Ok(report)
    }

    /// Every blob: sha256 -> (size, modified).
    fn blob_sizes(&self) -> Result<BTreeMap<String, (u64, SystemTime)>> {
        let dir = self.root().join("blobs");
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let meta = entry.metadata().at(&entry.path())?;
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            out.insert(name, (meta.len(), modified));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn model(store: &Store, id: &str, fill: u8, size: usize) {
        let info = store.put_bytes(&vec![fill; size]).unwrap();
        store.add_to_manifest(id, "main", "w.bin", &info).unwrap();
    }

    #[test]
    fn gc_keeps_pinned_and_recent_and_frees_down_to_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        model(&store, "org/old", 1, 1000);
        model(&store, "org/pinned", 2, 1000);
        model(&store, "org/recent", 3, 1000);
        store.pin("org/pinned", "main").unwrap();
        store
            .update_retention(false, |r: &mut Retention| {
                r.last_used.insert("org/old@main".into(), 1);
                r.last_used.insert("org/pinned@main".into(), 2);
            })
            .unwrap();
        store.touch("org/recent", "main");

        // No budget: nothing referenced goes.
        let report = store.gc(None, Duration::from_secs(3600)).unwrap();
        assert!(report.removed_models.is_empty());
        assert_eq!(report.kept_bytes, 3000);

        // Budget 1000: the old one goes; pinned and recent stay even
        // though the budget is still exceeded.
        let report = store.gc(Some(1000), Duration::from_secs(3600)).unwrap();
        assert_eq!(report.removed_models, ["org/old@main"]);
        assert_eq!(report.removed_blobs, 1);
        assert_eq!(report.freed_bytes, 1000);
        assert_eq!(report.kept_bytes, 2000);
        assert_eq!(report.pinned, ["org/pinned@main"]);
        assert!(store.manifest("org/old", "main").unwrap().is_none());
        assert!(store.manifest("org/recent", "main").unwrap().is_some());
        assert!(store.verify().unwrap().ok);

        assert!(store.unpin("org/pinned", "main").unwrap());
        assert!(!store.unpin("org/pinned", "main").unwrap());
        let report = store.gc(Some(1000), Duration::ZERO).unwrap();
        assert_eq!(report.removed_models, ["org/pinned@main"]);
        assert_eq!(report.kept_bytes, 1000);
    }

    #[test]
    fn shared_blobs_survive_while_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        model(&store, "a/one", 7, 500);
        model(&store, "a/two", 7, 500);
        store
            .update_retention(false, |r: &mut Retention| {
                r.last_used.insert("a/one@main".into(), 1);
                r.last_used.insert("a/two@main".into(), 2);
            })
            .unwrap();
        let report = store.gc(Some(0), Duration::ZERO).unwrap();
        assert_eq!(report.removed_models.len(), 2);
        assert_eq!(report.removed_blobs, 1);
        assert_eq!(report.kept_bytes, 0);
    }
}
