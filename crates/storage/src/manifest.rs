//! Model manifests: which blobs make up a model revision, and the IPFS root
//! CID of the folder they form.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::blob_store::BlobInfo;
use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::unixfs::{self, CidVersion, DagNode};
use crate::Store;

/// One file of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the model folder, with '/'.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 hex; the blob's name in the store.
    pub sha256: String,
    /// CIDv0 text of the content.
    pub cid: String,
    /// Cumulative DAG size of `cid`, needed to compute the root CID.
    /// 0 in manifests written before it was recorded; then recomputed from
    /// the blob.
    #[serde(default)]
    pub dag_size: u64,
}

impl ManifestFile {
    /// The entry for `path` holding the blob `info`.
    pub fn new(path: impl Into<String>, info: &BlobInfo) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            size: info.size,
            sha256: info.sha256.clone(),
            cid: info.cid.clone(),
            dag_size: info.dag_size,
        }
    }
}

/// A model revision: its files and the CIDv0 of the UnixFS folder holding
/// them (what `ipfs add -r` of the model folder gives).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model id, e.g. `org/name`.
    pub id: String,
    /// Revision (branch, tag or commit).
    pub revision: String,
    /// CIDv0 of the model folder.
    pub root_cid: String,
    /// Files, sorted by path.
    pub files: Vec<ManifestFile>,
    /// True when the manifest holds a whole snapshot (an imported folder):
    /// a file it lacks does not exist, so no other layer is asked for it.
    #[serde(default)]
    pub complete: bool,
}

impl Manifest {
    /// The entry for a relative path.
    pub fn file(&self, path: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Total bytes of all files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What [`Store::manifest_scan`] found.
#[derive(Clone, Debug, Default)]
pub struct ManifestScan {
    /// Readable manifests, sorted by id then revision.
    pub manifests: Vec<Manifest>,
    /// Manifest files that could not be read.
    pub unreadable: Vec<UnreadableFile>,
}

/// A cache file skipped because it could not be read or parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableFile {
    /// Where it is.
    pub path: String,
    /// Why it was skipped.
    pub error: String,
}

/// Reversible file-name escaping: bytes outside `[A-Za-z0-9._-]` become
/// `%XX`, so `org/name` and `org_name` stay distinct and '@' can separate
/// id from revision.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // "." and ".." are not usable as name parts on their own.
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "%2E");
    }
    out
}

/// Check and normalise a model-relative path to '/'-separated components.
fn normalise_rel_path(rel: &str) -> Result<String> {
    let norm = rel.replace('\\', "/");
    let ok = !norm.is_empty()
        && !norm.starts_with('/')
        && norm
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(norm)
    } else {
        Err(StorageError::InvalidPath {
            path: rel.to_owned(),
            reason: "must be a relative path without empty, '.' or '..' components".into(),
        })
    }
}

impl Store {
    /// Where the manifest of `id@revision` is stored.
    pub fn manifest_path(&self, id: &str, revision: &str) -> PathBuf {
        self.root()
            .join("manifests")
            .join(format!("{}@{}.json", escape(id), escape(revision)))
    }

    fn manifest_lock_key(id: &str, revision: &str) -> String {
        format!("manifest:{id}@{revision}")
    }

    /// The manifest of `id@revision`, if any. A malformed file is an error
    /// naming it.
    pub fn manifest(&self, id: &str, revision: &str) -> Result<Option<Manifest>> {
        read_manifest(&self.manifest_path(id, revision))
    }

    /// All readable manifests, sorted by id then revision. An unreadable
    /// one (garbage, a wrong shape) is logged and skipped, so one bad file
    /// does not take the whole cache down; [`Store::manifest_scan`] reports
    /// them.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let scan = self.manifest_scan()?;
        for bad in &scan.unreadable {
            tracing::warn!(path = %bad.path, "skipping an unreadable manifest: {}", bad.error);
        }
        Ok(scan.manifests)
    }

    /// Every manifest file: the readable ones (sorted by id then revision)
    /// and the unreadable ones with why.
    pub fn manifest_scan(&self) -> Result<ManifestScan> {
        let dir = self.root().join("manifests");
        let mut scan = ManifestScan::default();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match read_manifest(&path) {
                    Ok(Some(m)) => scan.manifests.push(m),
                    // Vanished between listing and reading (concurrent remove).
                    Ok(None) => {}
                    Err(e) => scan.unreadable.push(UnreadableFile {
                        path: path.display().to_string(),
                        error: e.to_string(),
                    }),
                }
            }
        }
        scan.manifests
            .sort_by(|a, b| (&a.id, &a.revision).cmp(&(&b.id, &b.revision)));
        scan.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(scan)
    }

    /// Write a manifest atomically (replacing any previous one).
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let _lock =
            self.internal_lock(&Self::manifest_lock_key(&manifest.id, &manifest.revision))?;
        self.write_manifest_locked(manifest)
    }

    fn write_manifest_locked(&self, manifest: &Manifest) -> Result<()> {
        let path = self.manifest_path(&manifest.id, &manifest.revision);
        let json = serde_json::to_vec_pretty(manifest).map_err(|source| StorageError::Json {
            path: path.clone(),
            source,
        })?;
        fsutil::write_atomic(&self.tmp_dir(), &path, &json, true)?;
        tracing::debug!(manifest = %path.display(), root_cid = %manifest.root_cid, "wrote manifest");
        Ok(())
    }

    /// Delete the manifest of `id@revision` (not its blobs); false if there
    /// was none.
    pub fn remove_manifest(&self, id: &str, revision: &str) -> Result<bool> {
        let _lock = self.internal_lock(&Self::manifest_lock_key(id, revision))?;
        let path = self.manifest_path(id, revision);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Record that `rel_path` of `id@revision` is the blob `info`: re-reads
    /// the manifest under its lock, inserts or replaces the entry,
    /// recomputes the root CID and writes it back atomically.
    pub fn add_to_manifest(
        &self,
        id: &str,
        revision: &str,
        rel_path: &str,
        info: &BlobInfo,
    ) -> Result<Manifest> {
        let rel = normalise_rel_path(rel_path)?;
        let _lock = self.internal_lock(&Self::manifest_lock_key(id, revision))?;
        let (mut files, complete) = self
            .manifest(id, revision)?
            .map(|m| (m.files, m.complete))
            .unwrap_or_default();
        files.retain(|f| f.path != rel);
        files.push(ManifestFile::new(rel, info));
        let manifest = self.build_manifest(id, revision, files, complete)?;
        self.write_manifest_locked(&manifest)?;
        Ok(manifest)
    }

    /// Put every regular file under `dir` into the store and record them as
    /// `id@revision` (replacing any previous manifest). `.git` and `.cache`
    /// folders are skipped and symlinks followed; see
    /// [`unixfs::walk_files`]. The root CID equals
    /// [`unixfs::path_cid`] of `dir`.
    pub fn import_dir(&self, dir: &Path, id: &str, revision: &str) -> Result<Manifest> {
        // A temp file an earlier, killed import left behind goes now.
        self.sweep_stale_temp_files();
        let _lock = self.internal_lock(&Self::manifest_lock_key(id, revision))?;
        let mut files = Vec::new();
        for (rel, abs) in unixfs::walk_files(dir)? {
            let info = self.put_file(&abs)?;
            files.push(ManifestFile::new(rel, &info));
        }
        let manifest = self.build_manifest(id, revision, files, true)?;
        self.write_manifest_locked(&manifest)?;
        tracing::info!(
            model = %format!("{id}@{revision}"),
            files = manifest.files.len(),
            root_cid = %manifest.root_cid,
            "imported folder"
        );
        Ok(manifest)
    }

    /// Record `files` (blobs already in the store) as the whole snapshot
    /// `id@revision`, replacing any previous manifest: what a process that
    /// made the files itself (an ONNX export) writes once they are all in.
    pub fn record_files(
        &self,
        id: &str,
        revision: &str,
        files: &[(String, BlobInfo)],
    ) -> Result<Manifest> {
        let mut entries = Vec::with_capacity(files.len());
        for (path, info) in files {
            entries.push(ManifestFile::new(normalise_rel_path(path)?, info));
        }
        let _lock = self.internal_lock(&Self::manifest_lock_key(id, revision))?;
        let manifest = self.build_manifest(id, revision, entries, true)?;
        self.write_manifest_locked(&manifest)?;
        Ok(manifest)
    }

    /// Record a whole snapshot fetched from elsewhere as `id@revision`,
    /// only if its files form the folder `expected_root` (any CID version
    /// of it); otherwise nothing is written.
    pub fn record_snapshot(
        &self,
        id: &str,
        revision: &str,
        files: &[(String, BlobInfo)],
        expected_root: &str,
    ) -> Result<Manifest> {
        let mut entries = Vec::with_capacity(files.len());
        for (path, info) in files {
            entries.push(ManifestFile::new(normalise_rel_path(path)?, info));
        }
        let _lock = self.internal_lock(&Self::manifest_lock_key(id, revision))?;
        let manifest = self.build_manifest(id, revision, entries, true)?;
        if !unixfs::same_cid(&manifest.root_cid, expected_root) {
            return Err(StorageError::ContentMismatch {
                source_name: format!("snapshot {expected_root}"),
                expected: format!("root CID {expected_root}"),
                actual: format!("root CID {}", manifest.root_cid),
            });
        }
        self.write_manifest_locked(&manifest)?;
        Ok(manifest)
    }

    fn build_manifest(
        &self,
        id: &str,
        revision: &str,
        mut files: Vec<ManifestFile>,
        complete: bool,
    ) -> Result<Manifest> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let root_cid = self.root_cid(&mut files)?;
        Ok(Manifest {
            id: id.to_owned(),
            revision: revision.to_owned(),
            root_cid,
            files,
            complete,
        })
    }

    /// CIDv0 of the folder made of `files`; fills in missing dag sizes
    /// (older manifests) from the blobs.
    fn root_cid(&self, files: &mut [ManifestFile]) -> Result<String> {
        let mut entries = Vec::with_capacity(files.len());
        for f in files.iter_mut() {
            let cid = Cid::try_from(f.cid.as_str()).map_err(|e| StorageError::InvalidCid {
                cid: f.cid.clone(),
                reason: format!("{e} (file {})", f.path),
            })?;
            if f.dag_size == 0 {
                let node = unixfs::path_cid(&self.get(&f.sha256)?, CidVersion::V0)?;
                if node.cid != cid {
                    return Err(StorageError::InvalidCid {
                        cid: f.cid.clone(),
                        reason: format!("blob of {} has CID {}", f.path, node.cid),
                    });
                }
                f.dag_size = node.dag_size;
            }
            let node = DagNode {
                cid,
                size: f.size,
                dag_size: f.dag_size,
            };
            entries.push((f.path.clone(), node));
        }
        Ok(unixfs::directory_cid(&entries, CidVersion::V0)?
            .cid
            .to_string())
    }
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StorageError::MalformedManifest {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_reversible_in_effect() {
        assert_eq!(escape("org/name"), "org%2Fname");
        assert_ne!(escape("org/name"), escape("org_name"));
        assert_eq!(escape("a@b"), "a%40b");
        assert_eq!(escape(".."), "%2E%2E");
        assert_eq!(escape("v1.0-rc_2"), "v1.0-rc_2");
    }

    fn sample(dir: &Path) -> PathBuf {
        let model = dir.join("model");
        fs::create_dir_all(model.join("sub/deeper")).unwrap();
        fs::create_dir_all(model.join(".git")).unwrap();
        fs::write(model.join("config.json"), b"{}\n").unwrap();
        fs::write(model.join("sub/tokenizer.json"), b"{\"a\":1}").unwrap();
        fs::write(model.join("sub/deeper/w.bin"), vec![9u8; 300_000]).unwrap();
        fs::write(model.join(".git/HEAD"), b"ref").unwrap();
        model
    }

    #[test]
    fn import_round_trip_and_root_cid_matches_path_cid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let model = sample(dir.path());
        let m = store.import_dir(&model, "org/name", "main").unwrap();
        let expected = unixfs::path_cid(&model, CidVersion::V0).unwrap();
        assert_eq!(m.root_cid, expected.cid.to_string());
        assert_eq!(m.files.len(), 3, "{:?}", m.files);
        assert_eq!(m.total_size(), 3 + 7 + 300_000);

        let read = store.manifest("org/name", "main").unwrap().unwrap();
        assert_eq!(read, m);
        assert_eq!(store.manifests().unwrap(), vec![m.clone()]);
        assert!(store.manifest("org/name", "other").unwrap().is_none());
        for f in &m.files {
            assert!(store.get(&f.sha256).is_ok());
        }

        // Built file by file, the manifest ends up the same.
        for f in m.files.iter().rev() {
            let info = store.put_file(&model.join(&f.path)).unwrap();
            store
                .add_to_manifest("org/name", "v2", &f.path, &info)
                .unwrap();
        }
        let v2 = store.manifest("org/name", "v2").unwrap().unwrap();
        assert_eq!(v2.files, m.files);
        assert_eq!(v2.root_cid, m.root_cid);

        // Replacing a file changes the root.
        let info = store.put_bytes(b"{\"changed\":true}\n").unwrap();
        let v2 = store
            .add_to_manifest("org/name", "v2", "config.json", &info)
            .unwrap();
        assert_eq!(v2.files.len(), 3);
        assert_ne!(v2.root_cid, m.root_cid);

        assert!(store.remove_manifest("org/name", "v2").unwrap());
        assert!(!store.remove_manifest("org/name", "v2").unwrap());
        assert_eq!(store.manifests().unwrap().len(), 1);
    }

    #[test]
    fn old_manifests_without_dag_size_still_get_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let model = sample(dir.path());
        let m = store.import_dir(&model, "m", "r").unwrap();
        let mut files = m.files.clone();
        files.iter_mut().for_each(|f| f.dag_size = 0);
        assert_eq!(store.root_cid(&mut files).unwrap(), m.root_cid);
        assert_eq!(files, m.files);
    }

    #[test]
    fn malformed_manifest_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let path = store.manifest_path("org/bad", "main");
        fs::write(&path, b"{ not json").unwrap();
        let err = store.manifest("org/bad", "main").unwrap_err();
        assert!(matches!(err, StorageError::MalformedManifest { .. }));
        assert!(err.to_string().contains("org%2Fbad@main.json"), "{err}");
        // The listing skips it and says so; the other manifests stay usable.
        let model = sample(dir.path());
        store.import_dir(&model, "org/good", "main").unwrap();
        let listed = store.manifests().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "org/good");
        let scan = store.manifest_scan().unwrap();
        assert_eq!(scan.unreadable.len(), 1);
        assert!(scan.unreadable[0].path.ends_with("org%2Fbad@main.json"));
        let report = store.verify().unwrap();
        assert!(!report.ok);
        assert_eq!(report.unreadable_manifests, scan.unreadable);
        // gc deletes no blob while a manifest it cannot read may refer to one.
        let gc = store.gc(Some(0), std::time::Duration::ZERO).unwrap();
        assert_eq!(gc.removed_blobs, 0);
        assert_eq!(gc.unreadable_manifests.len(), 1);
    }

    #[test]
    fn a_killed_writers_temp_file_is_swept_and_a_live_ones_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stale = store.tmp_dir().join("4242-0-1.part");
        fs::write(&stale, b"half a blob").unwrap();
        let (live, _file) = fsutil::create_temp(&store.tmp_dir()).unwrap();
        // Both older than the grace period.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for path in [&stale, &live] {
            fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert_eq!(store.sweep_stale_temp_files(), 1);
        assert!(!stale.exists());
        assert!(live.exists(), "a file whose writer is alive stays");
    }

    #[test]
    fn bad_relative_paths_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(b"x").unwrap();
        for bad in ["", "/etc/passwd", "a/../b", "a//b"] {
            assert!(
                store.add_to_manifest("m", "r", bad, &info).is_err(),
                "{bad}"
            );
        }
        let m = store.add_to_manifest("m", "r", "sub\\file", &info).unwrap();
        assert_eq!(m.files[0].path, "sub/file");
    }

    #[test]
    fn verify_reports_missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(b"weights").unwrap();
        store
            .add_to_manifest("org/m", "main", "w.bin", &info)
            .unwrap();
        assert!(store.verify().unwrap().ok);
        fs::remove_file(store.blob_path(&info.sha256)).unwrap();
        let report = store.verify().unwrap();
        assert!(!report.ok);
        assert_eq!(report.checked, 0);
        assert_eq!(report.missing, ["org/m@main/w.bin"]);
    }
}
