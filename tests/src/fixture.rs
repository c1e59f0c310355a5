//! Fixture models, their `reference.json` (what transformers computed) and
//! the arrays in it: inline `{shape, data}` objects, or `{shape, dtype,
//! key}` objects whose values are in `reference.safetensors`.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `fixtures/` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// A fixture model folder, e.g. `fixture_model("bert")`.
pub fn fixture_model(name: &str) -> PathBuf {
    fixtures_dir().join("models").join(name)
}

/// A JSON file, parsed; panics naming the file when it cannot be.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is malformed: {e}", path.display()))
}

/// `reference.json` of a fixture.
pub fn reference(name: &str) -> Value {
    read_json(&fixture_model(name).join("reference.json"))
}

/// `fixtures/references/<file>` (references that belong to no fixture
/// folder: the real models', longer inputs').
pub fn shared_reference(file: &str) -> Value {
    read_json(&fixtures_dir().join("references").join(file))
}

/// A JSON value deserialized as `T`; panics with the value when it is not.
fn list<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("unexpected JSON ({e}): {value}"))
}

/// A JSON list of numbers as f32.
pub fn f32_list(value: &Value) -> Vec<f32> {
    list(value)
}

/// A JSON list of token ids.
pub fn id_list(value: &Value) -> Vec<u32> {
    list(value)
}

/// A JSON list of integers as i64.
pub fn i64_list(value: &Value) -> Vec<i64> {
    list(value)
}

/// A JSON list of strings.
pub fn string_list(value: &Value) -> Vec<String> {
    list(value)
}

/// A JSON list of shape entries.
pub fn shape_of(value: &Value) -> Vec<usize> {
    list(value)
}

/// The string field `field` of every object in the JSON list `objects`,
/// e.g. the `source` of every file of an answer.
pub fn pluck(objects: &Value, field: &str) -> Vec<String> {
    objects
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {objects}"))
        .iter()
        .map(|o| {
            o[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field} in {o}"))
                .to_owned()
        })
        .collect()
}

/// An array as the answers and references write it: its shape and its
/// values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    /// An inline `{shape, data}` object.
    pub fn from_json(value: &Value) -> Array {
        Array {
            shape: shape_of(&value["shape"]),
            data: f32_list(&value["data"]),
        }
    }

    /// The rows along the last axis, e.g. `[n, d]` -> n rows of d.
    pub fn rows(&self) -> Vec<Vec<f32>> {
        let width = self.shape.last().copied().unwrap_or(1);
        self.data.chunks(width).map(<[f32]>::to_vec).collect()
    }
}

/// A reference array's rows, e.g. `outputs.embeddings` `[n, d]` -> n rows.
pub fn reference_rows(array: &Value) -> Vec<Vec<f32>> {
    Array::from_json(array).rows()
}

/// A reference array (`{shape, dtype, key}`) of fixture `name`, read from
/// `reference.safetensors` (large arrays are only there): shape and f32
/// values, row-major.
pub fn reference_array(name: &str, array: &Value) -> (Vec<usize>, Vec<f32>) {
    let Array { shape, data } = safetensors_array(&fixture_model(name), array);
    (shape, data)
}

/// The array `array["key"]` of `dir/reference.safetensors` (f32 or i64,
/// as f32).
fn safetensors_array(dir: &Path, array: &Value) -> Array {
    let key = array["key"].as_str().expect("array has a key");
    let path = dir.join("reference.safetensors");
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{} is malformed: {e}", path.display()));
    let view = tensors.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    let data = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        safetensors::Dtype::I64 => view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => panic!("{key}: unexpected dtype {other:?}"),
    };
    Array {
        shape: view.shape().to_vec(),
        data,
    }
}

/// A fixture model folder with its `reference.json`: a shared fixture
/// (`fixtures/models/<name>`) or a config variant
/// (`fixtures/models/variants/<name>`). Indexing it reads the reference.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The fixture's name (a variant's `variant`, else its folder name).
    pub name: String,
    /// The model folder.
    pub dir: PathBuf,
    /// Its `reference.json`.
    pub reference: Value,
}

impl Fixture {
    /// The shared fixture `fixtures/models/<name>`.
    pub fn new(name: &str) -> Fixture {
        Fixture::at(fixture_model(name))
    }

    /// The fixture in folder `dir`.
    pub fn at(dir: PathBuf) -> Fixture {
        let reference = read_json(&dir.join("reference.json"));
        let name = reference["variant"].as_str().map_or_else(
            || dir.file_name().unwrap_or_default().to_string_lossy().into(),
            str::to_owned,
        );
        Fixture {
            name,
            dir,
            reference,
        }
    }

    /// The variant fixtures (`fixtures/models/variants/<prefix>*`), sorted.
    pub fn variants(prefix: &str) -> Vec<Fixture> {
        variant_dirs(prefix).into_iter().map(Fixture::at).collect()
    }

    /// A file of the model folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A reference array: inline `{shape, data}`, or `{shape, dtype, key}`
    /// read from the folder's `reference.safetensors`.
    pub fn array(&self, array: &Value) -> Array {
        if array.get("data").is_some() {
            Array::from_json(array)
        } else {
            safetensors_array(&self.dir, array)
        }
    }

    /// The array at `path` of the reference (e.g. `["outputs", "logits"]`).
    pub fn array_at(&self, path: &[&str]) -> Array {
        self.array(at(&self.reference, path))
    }

    /// `inputs.texts`.
    pub fn texts(&self) -> Vec<String> {
        string_list(&self.reference["inputs"]["texts"])
    }
}

impl std::ops::Index<&str> for Fixture {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.reference[key]
    }
}

/// The value at `path` inside `value` (`Null` where absent).
pub fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, k| &v[*k])
}

/// The variant fixtures (`fixtures/models/variants/<prefix>*`), sorted.
pub fn variant_dirs(prefix: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("models/variants"))
        .expect("fixtures/models/variants")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no variant fixtures named {prefix}*");
    dirs
}

/// The bert fixture's texts and reference embeddings.
pub fn bert_reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let bert = Fixture::new("bert");
    (bert.texts(), reference_rows(&bert["outputs"]["embeddings"]))
}

/// Copies a folder recursively (fixtures are read-only; tests corrupt copies).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            let mut perms = std::fs::metadata(&target)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms)?;
        }
    }
    Ok(())
}

/// A writable copy of fixture `name` in `into/<name>`.
pub fn fixture_copy(name: &str, into: &Path) -> PathBuf {
    let dir = into.join(name);
    copy_dir(&fixture_model(name), &dir)
        .unwrap_or_else(|e| panic!("cannot copy fixture {name}: {e}"));
    dir
}

/// Rewrites the JSON file `path` with `edit` applied.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value = read_json(path);
    edit(&mut value);
    std::fs::write(path, value.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Writes the first `keep(len)` bytes of `from` to `to` (a file cut short,
/// as by an interrupted download).
pub fn write_prefix(from: &Path, to: &Path, keep: impl FnOnce(usize) -> usize) {
    let bytes =
        std::fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    let len = keep(bytes.len());
    std::fs::write(to, &bytes[..len])
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
}

/// The names in a folder (none when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Lays out `model_dir` as the Python Hub cache would hold `id@main` (blobs
/// named by sha256, snapshot symlinks, `refs/main`), as `huggingface_hub`
/// writes it; returns the hub folder.
pub fn make_hub_cache(hub: &Path, id: &str, model_dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let commit = "1111111111111111111111111111111111111111";
    let repo = hub.join(format!("models--{}", id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(repo.join("refs")).expect("refs");
    std::fs::create_dir_all(repo.join("blobs")).expect("blobs");
    std::fs::write(repo.join("refs/main"), commit).expect("ref");
    let mut stack = vec![model_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read fixture") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(model_dir).expect("inside");
            let bytes = std::fs::read(&path).expect("read");
            let blob = repo.join("blobs").join(hex::encode(Sha256::digest(&bytes)));
            std::fs::write(&blob, &bytes).expect("blob");
            let link = snapshot.join(rel);
            std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
            #[cfg(unix)]
            std::os::unix::fs::symlink(&blob, &link).expect("symlink");
            #[cfg(not(unix))]
            std::fs::copy(&blob, &link).expect("copy");
        }
    }
    hub.to_path_buf()
}

/// Borrowed views of `strings` (the library's skills take `&[&str]`).
pub fn as_strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}
