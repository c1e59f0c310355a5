//! The Python Hub cache (`huggingface_hub` layout): read in place.
//!
//! `<hub>/models--org--name/refs/<revision>` holds a commit hash and
//! `<hub>/models--org--name/snapshots/<commit>/<file>` the file (usually a
//! symlink into `blobs/`). Writing into it is left to `hf-hub`, which uses the
//! same layout, so a cache filled by Python is reused and vice versa.

use std::path::{Path, PathBuf};

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub(crate) fn default_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(home) = env("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join("hub");
    }
    dirs::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/huggingface/hub")
}

/// The repo folder of a model id.
pub(crate) fn repo_dir(hub_dir: &Path, id: &str) -> PathBuf {
    hub_dir.join(format!("models--{}", id.replace('/', "--")))
}

/// Looks `file` up for `id@revision`; `revision` may be a branch/tag (via
/// `refs/`) or a full commit hash.
pub(crate) fn lookup(hub_dir: &Path, id: &str, revision: &str, file: &str) -> Option<PathBuf> {
    let repo = repo_dir(hub_dir, id);
    let commit = if is_commit_hash(revision) {
        revision.to_owned()
    } else {
        std::fs::read_to_string(repo.join("refs").join(revision))
            .ok()?
            .trim()
            .to_owned()
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return None;
    }
    let path = repo.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_ref_and_by_commit() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo = repo_dir(dir.path(), "org/name");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::write(
            repo.join("snapshots").join(commit).join("config.json"),
            "{}",
        )
        .unwrap();
        assert!(lookup(dir.path(), "org/name", "main", "config.json").is_some());
        assert!(lookup(dir.path(), "org/name", commit, "config.json").is_some());
        assert!(lookup(dir.path(), "org/name", "dev", "config.json").is_none());
        assert!(lookup(dir.path(), "org/name", "main", "tokenizer.json").is_none());
    }

    #[test]
    fn env_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            default_dir(env(&[("HF_HUB_CACHE", "/a"), ("HF_HOME", "/b")])),
            PathBuf::from("/a")
        );
        assert_eq!(
            default_dir(env(&[("HF_HOME", "/b")])),
            PathBuf::from("/b/hub")
        );
    }
}
