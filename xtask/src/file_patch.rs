//! Idempotent text patches of third-party files: check / apply / revert.
//! A patch validates its target first (the file exists, it belongs to the
//! version the patch was written for, and exactly one of the original or
//! the patched text is there) and says what it did.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// One text replacement in one file of an installed package.
#[derive(Debug)]
pub struct FilePatch {
    /// Short name for messages.
    pub name: &'static str,
    /// The package folder (holds `package.json`).
    pub package_dir: PathBuf,
    /// The version of that package the patch was written for.
    pub version: &'static str,
    /// The patched file, relative to `package_dir`.
    pub file: &'static str,
    /// Text that is there before the patch.
    pub original: &'static str,
    /// Text that replaces it.
    pub patched: &'static str,
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchState {
    /// The original text is there once: the patch can be applied.
    Original,
    /// The patched text is there once: nothing to do.
    Applied,
}

impl FilePatch {
    fn target(&self) -> PathBuf {
        self.package_dir.join(self.file)
    }

    /// Validates the target and reports its state; an error when it is not
    /// the file this patch was written for.
    pub fn check(&self) -> anyhow::Result<PatchState> {
        let manifest = self.package_dir.join("package.json");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("patch {}: cannot read {}", self.name, manifest.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("patch {}: {} is not JSON", self.name, manifest.display()))?;
        let found = json["version"].as_str().unwrap_or("?");
        if found != self.version {
            bail!(
                "patch {}: written for version {}, found {found} in {}",
                self.name,
                self.version,
                manifest.display()
            );
        }
        let target = self.target();
        let body = std::fs::read_to_string(&target)
            .with_context(|| format!("patch {}: cannot read {}", self.name, target.display()))?;
        state_of(&body, self.original, self.patched)
            .with_context(|| format!("patch {}: {}", self.name, target.display()))
    }

    /// Applies the patch unless already applied; returns what it did.
    pub fn apply(&self) -> anyhow::Result<String> {
        self.rewrite(PatchState::Applied)
    }

    /// Restores the original text unless already there.
    pub fn revert(&self) -> anyhow::Result<String> {
        self.rewrite(PatchState::Original)
    }

    fn rewrite(&self, want: PatchState) -> anyhow::Result<String> {
        let target = self.target();
        let state = self.check()?;
        if state == want {
            let already = match want {
                PatchState::Applied => "already applied",
                PatchState::Original => "not applied",
            };
            return Ok(format!(
                "patch {}: {already} ({})",
                self.name,
                target.display()
            ));
        }
        let body = std::fs::read_to_string(&target)?;
        let (from, to, verb) = match want {
            PatchState::Applied => (self.original, self.patched, "applied"),
            PatchState::Original => (self.patched, self.original, "reverted"),
        };
        write_atomic(&target, &body.replacen(from, to, 1))?;
        Ok(format!(
            "patch {}: {verb} ({})",
            self.name,
            target.display()
        ))
    }
}

/// The state of `body`; an error unless exactly one of the two texts
/// occurs exactly once.
fn state_of(body: &str, original: &str, patched: &str) -> anyhow::Result<PatchState> {
    match (body.matches(original).count(), body.matches(patched).count()) {
        (1, 0) => Ok(PatchState::Original),
        (0, 1) => Ok(PatchState::Applied),
        (o, p) => bail!(
            "unexpected content: original text found {o} times, patched text {p} times (expected one of them once)"
        ),
    }
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("patch-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
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
            name: "t",
            package_dir: dir.to_path_buf(),
            version: "1.0.0",
            file: "f.js",
            original: "Size: file.size,",
            patched: "Size: String(file.size),",
        }
    }

    #[test]
    fn apply_is_idempotent_and_revert_restores() {
        let dir = tempfile::tempdir().unwrap();
        let body = "a\n  Size: file.size,\nb\n";
        let p = sample(dir.path(), body, "1.0.0");
        assert_eq!(p.check().unwrap(), PatchState::Original);
        assert!(p.apply().unwrap().contains("applied"));
        assert!(p.apply().unwrap().contains("already applied"));
        assert_eq!(p.check().unwrap(), PatchState::Applied);
        let patched = std::fs::read_to_string(dir.path().join("f.js")).unwrap();
        assert!(patched.contains("String(file.size)"));
        assert!(p.revert().unwrap().contains("reverted"));
        assert!(p.revert().unwrap().contains("not applied"));
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
    }
}
