//! Idempotent text patches of third-party files: check / apply / revert.
//! A patch validates its target first (the file exists, its package is the
//! version the patch was written for, and exactly one of the original or the
//! patched text is there) and says what it did; running it twice is safe.

mod js_ipfs;

pub use js_ipfs::js_ipfs_add_size;

use crate::{PatchError, PatchInfo, PatchKind, VersionGate};
use std::path::{Path, PathBuf};

/// One text replacement in one file of an installed npm package.
#[derive(Debug, Clone)]
pub struct FilePatch {
    /// Short name for messages.
    pub name: String,
    /// The package folder (holds `package.json`).
    pub package_dir: PathBuf,
    /// The version of that package the patch was written for (exact).
    pub version: String,
    /// The patched file, relative to `package_dir`.
    pub file: String,
    /// Text that is there before the patch.
    pub original: String,
    /// Text that replaces it.
    pub patched: String,
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The original text is there once: the patch can be applied.
    Original,
    /// The patched text is there once: nothing to do.
    Applied,
}

/// What [`FilePatch::apply`] or [`FilePatch::revert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    Applied,
    AlreadyApplied,
    Reverted,
    NotApplied,
}

/// A file patch's report: which patch, which file, what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    pub patch: String,
    pub path: PathBuf,
    pub action: FileAction,
}

impl std::fmt::Display for FileOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.action {
            FileAction::Applied => "applied",
            FileAction::AlreadyApplied => "already applied",
            FileAction::Reverted => "reverted",
            FileAction::NotApplied => "not applied",
        };
        write!(f, "patch {}: {what} ({})", self.patch, self.path.display())
    }
}

impl FilePatch {
    /// The patched file's path.
    pub fn target(&self) -> PathBuf {
        self.package_dir.join(&self.file)
    }

    /// Its `patch list` row.
    pub fn info(&self) -> PatchInfo {
        PatchInfo {
            name: format!("file.{}", self.name.replace(' ', "_")),
            kind: PatchKind::FilePatch,
            target: self.target().display().to_string(),
            gate: VersionGate::parse(&format!("package == {}", self.version)).unwrap_or_default(),
            description: self.name.clone(),
            source: String::new(),
        }
    }

    fn error(&self, path: &Path, reason: impl Into<String>) -> PatchError {
        PatchError::Target {
            patch: self.name.clone(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn read(&self, path: &Path) -> Result<String, PatchError> {
        std::fs::read_to_string(path).map_err(|source| PatchError::TargetIo {
            patch: self.name.clone(),
            path: path.to_owned(),
            what: "cannot read it",
            source,
        })
    }

    /// Validates the target and reports its state; an error when it is not
    /// the file this patch was written for.
    pub fn check(&self) -> Result<FileState, PatchError> {
        let manifest = self.package_dir.join("package.json");
        let json: serde_json::Value =
            serde_json::from_str(&self.read(&manifest)?).map_err(|source| {
                PatchError::TargetJson {
                    patch: self.name.clone(),
                    path: manifest.clone(),
                    what: "not JSON",
                    source,
                }
            })?;
        let found = json.get("version").and_then(|v| v.as_str()).unwrap_or("?");
        if found != self.version {
            return Err(self.error(
                &manifest,
                format!("written for version {}, found {found}", self.version),
            ));
        }
        let target = self.target();
        let body = self.read(&target)?;
        state_of(&body, &self.original, &self.patched).map_err(|source| PatchError::TargetContent {
            patch: self.name.clone(),
            path: target,
            source,
        })
    }

    /// Applies the patch unless already applied.
    pub fn apply(&self) -> Result<FileOutcome, PatchError> {
        self.rewrite(FileState::Applied)
    }

    /// Restores the original text unless already there.
    pub fn revert(&self) -> Result<FileOutcome, PatchError> {
        self.rewrite(FileState::Original)
    }

    fn rewrite(&self, want: FileState) -> Result<FileOutcome, PatchError> {
        let path = self.target();
        let state = self.check()?;
        let action = match (want, state == want) {
            (FileState::Applied, true) => FileAction::AlreadyApplied,
            (FileState::Original, true) => FileAction::NotApplied,
            (FileState::Applied, false) => FileAction::Applied,
            (FileState::Original, false) => FileAction::Reverted,
        };
        if state != want {
            let body = self.read(&path)?;
            let (from, to) = match want {
                FileState::Applied => (&self.original, &self.patched),
                FileState::Original => (&self.patched, &self.original),
            };
            write_atomic(&path, &body.replacen(from.as_str(), to, 1))?;
        }
        let outcome = FileOutcome {
            patch: self.name.clone(),
            path,
            action,
        };
        tracing::info!("{outcome}");
        Ok(outcome)
    }
}

/// A file patch's target holds neither the original nor the patched text
/// exactly once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected content: original text found {original} times, patched text {patched} times (expected one of them once)")]
pub struct UnexpectedContent {
    /// How often the original text occurs.
    pub original: usize,
    /// How often the patched text occurs.
    pub patched: usize,
}

/// The state of `body`; an error unless exactly one of the two texts occurs
/// exactly once.
fn state_of(body: &str, original: &str, patched: &str) -> Result<FileState, UnexpectedContent> {
    match (
        body.matches(original).count(),
        body.matches(patched).count(),
    ) {
        (1, 0) => Ok(FileState::Original),
        (0, 1) => Ok(FileState::Applied),
        (original, patched) => Err(UnexpectedContent { original, patched }),
    }
}

/// Temp file + rename, so a reader never sees half a file.
fn write_atomic(path: &Path, text: &str) -> Result<(), PatchError> {
    let tmp = path.with_extension("patch-tmp");
    std::fs::write(&tmp, text).map_err(|e| PatchError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| PatchError::io(path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(dir: &Path, body: &str, version: &str) -> FilePatch {
        std::fs::write(
            dir.join("package.json"),
            format!("{{\"version\":\"{version}\"}}"),
        )
        .unwrap();
        std::fs::write(dir.join("f.js"), body).unwrap();
        FilePatch {
            name: "t".into(),
            package_dir: dir.to_path_buf(),
            version: "1.0.0".into(),
            file: "f.js".into(),
            original: "Size: file.size,".into(),
            patched: "Size: String(file.size),".into(),
        }
    }

    #[test]
    fn apply_is_idempotent_and_revert_restores() {
        let dir = tempfile::tempdir().unwrap();
        let body = "a\n  Size: file.size,\nb\n";
        let p = sample(dir.path(), body, "1.0.0");
        assert_eq!(p.check().unwrap(), FileState::Original);
        assert_eq!(p.apply().unwrap().action, FileAction::Applied);
        assert_eq!(p.apply().unwrap().action, FileAction::AlreadyApplied);
        assert!(p.apply().unwrap().to_string().contains("already applied"));
        assert_eq!(p.check().unwrap(), FileState::Applied);
        let patched = std::fs::read_to_string(dir.path().join("f.js")).unwrap();
        assert!(patched.contains("String(file.size)"));
        assert_eq!(p.revert().unwrap().action, FileAction::Reverted);
        assert_eq!(p.revert().unwrap().action, FileAction::NotApplied);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.js")).unwrap(),
            body
        );
    }

    #[test]
    fn validates_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path(), "Size: file.size,", "2.0.0");
        assert!(p
            .check()
            .unwrap_err()
            .to_string()
            .contains("written for version"));
        let p = sample(dir.path(), "nothing here", "1.0.0");
        assert!(p.apply().is_err());
        let p = sample(dir.path(), "Size: file.size, Size: file.size,", "1.0.0");
        assert!(p.check().is_err());
        let missing = FilePatch {
            package_dir: dir.path().join("absent"),
            ..p
        };
        assert!(missing
            .check()
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }
}
