//! What `--model` can name: a local folder, a Hub id or an IPFS CID.

use crate::LoadError;
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed model reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A folder on disk, read in place.
    LocalDir(PathBuf),
    /// `org/name[@revision]` on the Hub (revision defaults to `main`).
    Hub {
        /// `org/name`.
        id: String,
        /// Branch, tag or commit.
        revision: String,
    },
    /// `ipfs://<cid>`: a snapshot directory by its root CID.
    Ipfs {
        /// The root CID.
        cid: String,
    },
}

impl ModelRef {
    /// Parses what a user passed. Anything that looks like a path (absolute,
    /// `./`, `../`, `~/`) or names an existing folder is a local folder.
    pub fn parse(reference: &str) -> Result<Self, LoadError> {
        let invalid = |reason: &str| LoadError::InvalidReference {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = reference.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        if let Some(cid) = trimmed.strip_prefix("ipfs://") {
            let cid = cid.trim_end_matches('/');
            if cid.is_empty() || cid.contains('/') {
                return Err(invalid("expected ipfs://<cid>"));
            }
            cid::Cid::try_from(cid).map_err(|source| LoadError::InvalidCid {
                reference: reference.to_owned(),
                source,
            })?;
            return Ok(Self::Ipfs {
                cid: cid.to_owned(),
            });
        }
        let looks_like_path = trimmed.starts_with('/')
            || trimmed.starts_with("./")
            || trimmed.starts_with("../")
            || trimmed.starts_with("~/")
            || trimmed == "."
            || trimmed == "..";
        let expanded = expand_home(trimmed);
        if expanded.is_dir() {
            return Ok(Self::LocalDir(expanded));
        }
        if looks_like_path || expanded.exists() {
            return Err(invalid("no such model folder"));
        }
        Self::hub(trimmed)
    }
}

impl ModelRef {
    /// A Hub reference from `org/name[@revision]`, never a local folder
    /// (for naming a model, e.g. `cache import --as`).
    pub fn hub(reference: &str) -> Result<Self, LoadError> {
        let (id, revision) = match reference.split_once('@') {
            Some((id, rev)) if !rev.is_empty() => (id, rev),
            Some(_) => ("", ""),
            None => (reference, "main"),
        };
        validate_hub_id(reference, id)?;
        if revision.is_empty() {
            return Err(LoadError::InvalidReference {
                reference: reference.to_owned(),
                reason: "empty revision after '@'".to_owned(),
            });
        }
        Ok(Self::Hub {
            id: id.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LocalDir(path) => write!(f, "{}", path.display()),
            Self::Hub { id, revision } if revision == "main" => f.write_str(id),
            Self::Hub { id, revision } => write!(f, "{id}@{revision}"),
            Self::Ipfs { cid } => write!(f, "ipfs://{cid}"),
        }
    }
}

fn expand_home(reference: &str) -> PathBuf {
    match (reference.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => Path::new(reference).to_path_buf(),
    }
}

/// The Hub's rules: `name` or `org/name`, letters, digits, `-`, `_`, `.`,
/// no `--` or `..`, at most 96 characters per part. The error names
/// `reference`, what the user passed.
fn validate_hub_id(reference: &str, id: &str) -> Result<(), LoadError> {
    let invalid = |reason: String| LoadError::InvalidReference {
        reference: reference.to_owned(),
        reason,
    };
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() > 2 {
        return Err(invalid("a Hub id is 'name' or 'org/name'".to_owned()));
    }
    for part in parts {
        let ok_chars = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if part.is_empty()
            || part.len() > 96
            || !ok_chars
            || part.contains("--")
            || part.contains("..")
            || part.starts_with(['-', '.'])
        {
            return Err(invalid(format!(
                "'{part}' is not a valid Hub name (letters, digits, '-', '_', '.') nor an existing folder"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            ModelRef::parse("sentence-transformers/all-MiniLM-L6-v2").unwrap(),
            ModelRef::Hub {
                id: "sentence-transformers/all-MiniLM-L6-v2".into(),
                revision: "main".into()
            }
        );
        assert_eq!(
            ModelRef::parse("gpt2@v1.0").unwrap(),
            ModelRef::Hub {
                id: "gpt2".into(),
                revision: "v1.0".into()
            }
        );
        let dir = std::env::temp_dir();
        assert_eq!(
            ModelRef::parse(dir.to_str().unwrap()).unwrap(),
            ModelRef::LocalDir(dir)
        );
        assert!(matches!(
            ModelRef::parse("ipfs://QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o").unwrap(),
            ModelRef::Ipfs { .. }
        ));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "ipfs://",
            "ipfs://notacid",
            "./no/such/dir",
            "a/b/c",
            "bad name",
            "x@",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
    }
}
