//! The local content-addressed blob store: `blobs/<sha256 hex>`.

use std::convert::Infallible;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil::{self, TempGuard};
use crate::stats::SessionCounters;
use crate::unixfs::{for_each_chunk, CidVersion, FileBuilder};

/// What the store knows about a blob once it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Lowercase hex sha256 of the content; the blob's name.
    pub sha256: String,
    /// Content length in bytes.
    pub size: u64,
    /// CIDv0 text `ipfs add` gives this content.
    pub cid: String,
    /// Cumulative DAG size of that CID (a parent link's Tsize).
    pub dag_size: u64,
}

/// What untrusted content must hash to before it may enter the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The CID it was asked for (CIDv0, or a CIDv1 of the same dag-pb node).
    pub cid: String,
    /// The sha256 a manifest records for it, when there is one.
    pub sha256: Option<String>,
}

impl Expected {
    fn check(&self, info: &BlobInfo, source: &Path) -> Result<()> {
        let cid_ok = crate::unixfs::same_cid(&self.cid, &info.cid);
        let sha_ok = self
            .sha256
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(&info.sha256));
        if cid_ok && sha_ok {
            return Ok(());
        }
        Err(StorageError::ContentMismatch {
            source_name: source.display().to_string(),
            expected: match &self.sha256 {
                Some(sha) => format!("CID {} (sha256 {sha})", self.cid),
                None => format!("CID {}", self.cid),
            },
            actual: format!("CID {} (sha256 {})", info.cid, info.sha256),
        })
    }
}

/// A content-addressed cache rooted at one folder: `blobs/`, `manifests/`,
/// `locks/`, `tmp/` (and `corrupt/`, `stats.json` once needed). Cheap to
/// clone; clones share the in-process hit/miss counters.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    pub(crate) session: Arc<SessionCounters>,
}

const SUBDIRS: [&str; 4] = ["blobs", "manifests", "locks", "tmp"];

/// Normalise and check a sha256 hex string.
pub(crate) fn check_sha256(sha256: &str) -> Result<String> {
    let lower = sha256.to_ascii_lowercase();
    if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(StorageError::InvalidHash(sha256.to_owned()))
    }
}

/// The sha256 (hex) of a file's content, read in chunks: what a blob of
/// it would be named.
pub fn sha256_of_file(path: &Path) -> Result<String> {
    let file = File::open(path).at(path)?;
    hash_reader(file).at(path)
}

/// Stream `reader` to completion, returning the sha256 hex.
pub(crate) fn hash_reader<R: Read>(reader: R) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let Ok(()) = for_each_chunk(reader, |chunk| {
        hasher.update(chunk);
        Ok::<(), Infallible>(())
    })?;
    Ok(hex::encode(hasher.finalize()))
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in SUBDIRS {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).at(&dir)?;
        }
        Ok(Store {
            root,
            session: Arc::default(),
        })
    }

    /// Open the store at [`crate::cache_dir`].
    pub fn open_default() -> Result<Store> {
        Store::open(crate::cache_dir())
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes temporary files left by killed writers (see
    /// [`fsutil::sweep_stale_temp_files`]); returns how many.
    pub fn sweep_stale_temp_files(&self) -> usize {
        fsutil::sweep_stale_temp_files(&self.tmp_dir())
    }

    /// Where the blob with this sha256 lives (whether or not it exists).
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256.to_ascii_lowercase())
    }

    /// Whether a blob with this sha256 is present (not verified).
    pub fn has(&self, sha256: &str) -> bool {
        check_sha256(sha256).is_ok_and(|h| self.blob_path(&h).is_file())
    }

    /// Copy a file into the store.
    pub fn put_file(&self, src: &Path) -> Result<BlobInfo> {
        let file = File::open(src).at(src)?;
        self.put_reader(file, src)
    }

    /// Put in-memory content into the store.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        self.put_reader(bytes, Path::new("<bytes>"))
    }

    /// Stream `reader` into the store in one pass, computing sha256, size
    /// and CIDv0 as the bytes go by; `source` names it in errors.
    pub fn put_reader<R: Read>(&self, reader: R, source: &Path) -> Result<BlobInfo> {
        self.put_checked(reader, source, None)
    }

    /// Like [`Store::put_reader`], for content from an untrusted source
    /// (an IPFS node): the bytes must hash to `expected` (CIDv0 text, and
    /// the sha256 too when known) or they never enter the store; the
    /// temp file is removed and [`StorageError::ContentMismatch`] returned.
    pub fn put_reader_verified<R: Read>(
        &self,
        reader: R,
        source: &Path,
        expected: &Expected,
    ) -> Result<BlobInfo> {
        self.put_checked(reader, source, Some(expected))
    }

    fn put_checked<R: Read>(
        &self,
        reader: R,
        source: &Path,
        expected: Option<&Expected>,
    ) -> Result<BlobInfo> {
        let (tmp, mut file) = fsutil::create_temp(&self.tmp_dir())?;
        let mut guard = TempGuard(Some(tmp.clone()));
        let mut hasher = Sha256::new();
        let mut dag = FileBuilder::new(CidVersion::V0);
        // A read error is the source's; a write error the temporary file's.
        for_each_chunk(reader, |chunk| {
            hasher.update(chunk);
            dag.update(chunk)?;
            file.write_all(chunk).at(&tmp)
        })
        .at(source)??;
        file.sync_all().at(&tmp)?;
        let mut perms = file.metadata().at(&tmp)?.permissions();
        // Read-only so a stray writer cannot corrupt a shared blob in place.
        perms.set_readonly(true);
        file.set_permissions(perms).at(&tmp)?;
        // `file` stays open (and locked) until the temp is renamed or
        // removed, so a sweep never takes it for a killed writer's.

        let size = dag.len();
        let node = dag.finish()?;
        let info = BlobInfo {
            sha256: hex::encode(hasher.finalize()),
            size,
            cid: node.cid.to_string(),
            dag_size: node.dag_size,
        };
        if let Some(want) = expected {
            want.check(&info, source)?;
        }
        let dest = self.blob_path(&info.sha256);
        // Same name means same content; a complete copy is kept and our
        // temp dropped (by the guard). A short one (crash of an old
        // version, truncation) is replaced.
        let complete = fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size);
        if complete {
            tracing::debug!(blob = %dest.display(), "blob already present");
        } else {
            fs::rename(&tmp, &dest).at(&dest)?;
            guard.disarm();
            fsutil::sync_dir(&self.root.join("blobs"));
            tracing::debug!(blob = %dest.display(), size, cid = %info.cid, "stored blob");
        }
        drop(guard);
        drop(file);
        Ok(info)
    }

    /// Path of the blob with this sha256 after checking its content still
    /// hashes to its name. A corrupt blob is moved to `corrupt/` so the
    /// cache is never poisoned and a later fetch can repair it.
    pub fn get(&self, sha256: &str) -> Result<PathBuf> {
        let expected = check_sha256(sha256)?;
        let path = self.blob_path(&expected);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::MissingBlob {
                    sha256: expected,
                    path,
                })
            }
            Err(e) => return Err(e).at(&path),
        };
        let actual = hash_reader(file).at(&path)?;
        if actual == expected {
            return Ok(path);
        }
        let moved = self.quarantine(&path, &expected)?;
        tracing::warn!(
            blob = %path.display(),
            moved_to = %moved.display(),
            %expected,
            %actual,
            "corrupt blob moved aside"
        );
        Err(StorageError::Corrupt {
            path: moved,
            expected,
            actual,
        })
    }

    fn quarantine(&self, path: &Path, sha256: &str) -> Result<PathBuf> {
        let dir = self.root.join("corrupt");
        fs::create_dir_all(&dir).at(&dir)?;
        let dest = dir.join(format!("{sha256}.{}", fsutil::nanos()));
        fs::rename(path, &dest).at(path)?;
        Ok(dest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[allow(clippy::permissions_set_readonly_false)]
    fn flip_byte(path: &Path) {
        let mut perms = fs::metadata(path).unwrap().permissions();
        perms.set_readonly(false);
        fs::set_permissions(path, perms).unwrap();
        let mut bytes = fs::read(path).unwrap();
        bytes[3] ^= 0x01;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn put_get_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(b"hello world\n").unwrap();
        assert_eq!(
            info.sha256,
            "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
        );
        assert_eq!(info.cid, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
        assert_eq!(info.size, 12);
        assert!(store.has(&info.sha256));
        let path = store.get(&info.sha256).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world\n");
        assert!(fs::metadata(&path).unwrap().permissions().readonly());

        let src = dir.path().join("src.bin");
        fs::write(&src, b"hello world\n").unwrap();
        assert_eq!(store.put_file(&src).unwrap(), info);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn missing_and_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let absent = "0".repeat(64);
        assert!(!store.has(&absent));
        assert!(matches!(
            store.get(&absent),
            Err(StorageError::MissingBlob { .. })
        ));
        assert!(matches!(
            store.get("../etc/passwd"),
            Err(StorageError::InvalidHash(_))
        ));
        let err = store.put_file(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn flipped_byte_is_detected_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(&[7u8; 1000]).unwrap();
        let path = store.blob_path(&info.sha256);
        flip_byte(&path);

        let report = store.verify().unwrap();
        assert!(!report.ok);
        assert_eq!(report.checked, 1);
        assert_eq!(report.corrupt, [path.display().to_string()]);
        assert!(path.exists(), "verify must not modify the store");

        match store.get(&info.sha256) {
            Err(StorageError::Corrupt {
                path: moved,
                expected,
                actual,
            }) => {
                assert_eq!(expected, info.sha256);
                assert_ne!(actual, expected);
                assert!(moved.starts_with(dir.path().join("corrupt")));
                assert!(moved.exists());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(!path.exists());
        assert!(!store.has(&info.sha256));
        // A later put repairs it.
        store.put_bytes(&[7u8; 1000]).unwrap();
        assert!(store.get(&info.sha256).is_ok());
        assert!(store.verify().unwrap().ok);
    }

    #[test]
    fn concurrent_puts_make_one_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let src = dir.path().join("big.bin");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(&src, &data).unwrap();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (store, src) = (store.clone(), src.clone());
                std::thread::spawn(move || store.put_file(&src).unwrap())
            })
            .collect();
        let infos: Vec<BlobInfo> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(infos.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(fs::read_dir(store.root().join("blobs")).unwrap().count(), 1);
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
        assert_eq!(
            fs::read(store.get(&infos[0].sha256).unwrap()).unwrap(),
            data
        );
    }
}
