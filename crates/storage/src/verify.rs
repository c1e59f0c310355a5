//! Whole-store integrity check.

use std::fs::{self, File};

use serde::{Deserialize, Serialize};

use crate::blob_store::hash_reader;
use crate::error::{IoContext, Result};
use crate::Store;

/// Outcome of [`Store::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// True when nothing is corrupt or missing.
    pub ok: bool,
    /// Blobs re-hashed.
    pub checked: usize,
    /// Absolute paths of blobs whose content does not match their name.
    pub corrupt: Vec<String>,
    /// `id@rev/path` of manifest entries whose blob is gone.
    pub missing: Vec<String>,
    /// Manifest files that could not be read (skipped).
    #[serde(default)]
    pub unreadable_manifests: Vec<crate::UnreadableFile>,
    /// Stale temporary files removed (left by killed writers).
    #[serde(default)]
    pub removed_temp_files: usize,
}

impl Store {
    /// Re-hash every blob and check every manifest's blobs exist. Reports
    /// only; use [`Store::get`] to move a corrupt blob aside.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            removed_temp_files: self.sweep_stale_temp_files(),
            ..VerifyReport::default()
        };
        let dir = self.root().join("blobs");
        let mut paths: Vec<_> = fs::read_dir(&dir)
            .at(&dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .at(&dir)?;
        paths.sort();
        for path in paths {
            if !path.is_file() {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let actual = hash_reader(File::open(&path).at(&path)?).at(&path)?;
            report.checked += 1;
            if actual != name {
                tracing::debug!(blob = %path.display(), %actual, "corrupt blob");
                report.corrupt.push(path.display().to_string());
            }
        }
        let scan = self.manifest_scan()?;
        report.unreadable_manifests = scan.unreadable;
        for m in scan.manifests {
            for f in &m.files {
                if !self.has(&f.sha256) {
                    report
                        .missing
                        .push(format!("{}@{}/{}", m.id, m.revision, f.path));
                }
            }
        }
        report.ok = report.corrupt.is_empty()
            && report.missing.is_empty()
            && report.unreadable_manifests.is_empty();
        Ok(report)
    }
}
