//! Which GGUF file `--model` (and `--gguf`) name.
//!
//! [`ModelRef`] names a folder, a Hub repository or a CID; a GGUF model is
//! one of those plus the name of a `.gguf` file inside it. A local `.gguf`
//! path becomes its parent folder plus the file name, so every file is
//! still read through the loader.

use crate::SkillError;
use ipfs_accelerate_loader::ModelRef;
use std::path::Path;

/// A GGUF file inside a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufModel {
    /// The folder, Hub repository or CID holding the file.
    pub model: ModelRef,
    /// The `.gguf` file's name inside it.
    pub file: String,
}

/// Finds the GGUF file `reference` and `gguf_file` name, or `None` when the
/// model is not a GGUF one:
/// - `gguf_file` given: that file inside the model `reference` names;
/// - `reference` is a local `*.gguf` file: that file;
/// - `reference` is a local folder with no `config.json` and exactly one
///   `*.gguf`: that one.
pub fn locate(reference: &str, gguf_file: Option<&str>) -> Result<Option<GgufModel>, SkillError> {
    if let Some(file) = gguf_file {
        return Ok(Some(GgufModel {
            model: ModelRef::parse(reference)?,
            file: file.to_owned(),
        }));
    }
    let path = Path::new(reference.trim());
    if path.is_file() && is_gguf(path) {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        return Ok(Some(GgufModel {
            model: ModelRef::LocalDir(parent),
            file,
        }));
    }
    let model = ModelRef::parse(reference)?;
    let ModelRef::LocalDir(dir) = &model else {
        return Ok(None);
    };
    if dir.join("config.json").is_file() {
        return Ok(None);
    }
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| SkillError::InvalidInput(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && is_gguf(p))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop().map(|file| GgufModel { model, file })),
        _ => {
            found.sort();
            Err(SkillError::InvalidInput(format!(
                "{} holds several GGUF files ({}); pick one with --gguf FILE",
                dir.display(),
                found.join(", ")
            )))
        }
    }
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_folders_and_explicit_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.Q4_1.gguf");
        std::fs::write(&file, b"GGUF").unwrap();
        let expected = GgufModel {
            model: ModelRef::LocalDir(dir.path().to_path_buf()),
            file: "m.Q4_1.gguf".to_owned(),
        };
        assert_eq!(
            locate(file.to_str().unwrap(), None).unwrap(),
            Some(expected.clone())
        );
        let folder = dir.path().to_str().unwrap();
        assert_eq!(locate(folder, None).unwrap(), Some(expected));
        assert_eq!(
            locate(folder, Some("other.gguf")).unwrap().unwrap().file,
            "other.gguf"
        );
        std::fs::write(dir.path().join("second.gguf"), b"GGUF").unwrap();
        assert!(locate(folder, None).is_err());
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        assert_eq!(locate(folder, None).unwrap(), None);
    }
}
