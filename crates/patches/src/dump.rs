//! `--dump-rewriting DIR`: every applied rewrite is written as
//! `NNN-<patch>.original.<ext>`, `NNN-<patch>.rewritten.<ext>` and
//! `NNN-<patch>.diff` (unified diff), numbered in the order applied.

use crate::PatchError;
use std::path::{Path, PathBuf};

/// Where rewrites are dumped.
#[derive(Debug, Clone)]
pub struct RewriteDump {
    dir: PathBuf,
}

/// The files one dump wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFiles {
    pub original: PathBuf,
    pub rewritten: PathBuf,
    pub diff: PathBuf,
}

impl RewriteDump {
    /// Dumps into `dir` (created when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one rewrite of `target` (named in the diff header) by `patch`.
    pub fn write(
        &self,
        patch: &str,
        target: &str,
        extension: &str,
        original: &str,
        rewritten: &str,
    ) -> Result<DumpFiles, PatchError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| PatchError::io(&self.dir, e))?;
        // Numbered after what is there, so several patch sets (config, then
        // tensors) share one folder in order.
        let seq = std::fs::read_dir(&self.dir)
            .map_err(|e| PatchError::io(&self.dir, e))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".diff"))
            .count();
        let stem: String = patch
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = format!("{seq:03}-{stem}");
        let files = DumpFiles {
            original: self.dir.join(format!("{base}.original.{extension}")),
            rewritten: self.dir.join(format!("{base}.rewritten.{extension}")),
            diff: self.dir.join(format!("{base}.diff")),
        };
        let diff = similar::TextDiff::from_lines(original, rewritten)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{target} (original)"),
                &format!("{target} (rewritten by {patch})"),
            )
            .to_string();
        for (path, text) in [
            (&files.original, original),
            (&files.rewritten, rewritten),
            (&files.diff, diff.as_str()),
        ] {
            std::fs::write(path, text).map_err(|e| PatchError::io(path, e))?;
        }
        tracing::debug!(patch, dir = %self.dir.display(), "dumped rewrite {base}");
        Ok(files)
    }
}
