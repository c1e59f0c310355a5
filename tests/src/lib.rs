//! Support for the workspace's tests: fixture paths, reference outputs, and
//! skipping that says so (or fails under `IPFS_ACCELERATE_REQUIRE_ALL=1`).
//!
//! The cross-crate tests themselves live in `tests/tests/`; the command-line
//! tests live with the binary in `crates/cli/tests/`.

#![allow(clippy::print_stdout)]

pub mod ipfs_node;

use serde_json::Value;
use std::path::PathBuf;

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

/// True when `IPFS_ACCELERATE_REQUIRE_ALL` is truthy: skips become failures.
pub fn require_all() -> bool {
    std::env::var("IPFS_ACCELERATE_REQUIRE_ALL")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Reports a skipped test; panics instead when everything is required.
/// Returns so the caller can `return` right after.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !require_all(),
        "{test}: required component missing under IPFS_ACCELERATE_REQUIRE_ALL=1: {reason}"
    );
    println!("SKIPPED {test}: {reason}");
    eprintln!("SKIPPED {test}: {reason}");
}

/// The real all-MiniLM-L6-v2 folder (`cargo xtask fetch-models` fetches it;
/// `cargo xtask ci` passes it as `IPFS_ACCELERATE_MINILM_DIR`).
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("IPFS_ACCELERATE_MINILM_DIR")?);
    dir.join("model.safetensors").is_file().then_some(dir)
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF file (`cargo xtask
/// fetch-models` fetches it; `cargo xtask ci` passes it as
/// `IPFS_ACCELERATE_SMOLLM2_GGUF`).
pub fn smollm2_gguf() -> Option<PathBuf> {
    let file = PathBuf::from(std::env::var_os("IPFS_ACCELERATE_SMOLLM2_GGUF")?);
    file.is_file().then_some(file)
}

/// The ONNX Runtime library (`cargo xtask setup-ort` fetches it; `cargo
/// xtask ci` passes it as `ORT_DYLIB_PATH`).
pub fn ort_dylib() -> Option<PathBuf> {
    let file = PathBuf::from(std::env::var_os("ORT_DYLIB_PATH")?);
    file.is_file().then_some(file)
}

/// The OpenVINO plugin execution provider (`IPFS_ACCELERATE_OPENVINO_EP`,
/// from `cargo xtask setup-ort`).
pub fn openvino_ep() -> Option<PathBuf> {
    let file = PathBuf::from(std::env::var_os("IPFS_ACCELERATE_OPENVINO_EP")?);
    file.is_file().then_some(file)
}

/// Why a test needing ONNX Runtime (and, with `openvino`, its OpenVINO
/// provider) cannot run here; `None` when it can.
pub fn ort_missing(openvino: bool) -> Option<&'static str> {
    if ort_dylib().is_none() {
        return Some(
            "ONNX Runtime not installed (run `cargo xtask setup-ort`; set ORT_DYLIB_PATH)",
        );
    }
    if openvino && openvino_ep().is_none() {
        return Some("OpenVINO EP not installed (run `cargo xtask setup-ort`; set IPFS_ACCELERATE_OPENVINO_EP)");
    }
    None
}

/// `reference.json` of a fixture.
pub fn reference(name: &str) -> Value {
    let path = fixture_model(name).join("reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is malformed: {e}", path.display()))
}

/// A reference array's rows, e.g. `outputs.embeddings` `[n, d]` -> n rows.
pub fn reference_rows(array: &Value) -> Vec<Vec<f32>> {
    let shape: Vec<usize> = array["shape"]
        .as_array()
        .expect("array has a shape")
        .iter()
        .map(|v| v.as_u64().expect("shape entries are integers") as usize)
        .collect();
    let data: Vec<f32> = array["data"]
        .as_array()
        .expect("array data is inlined")
        .iter()
        .map(|v| v.as_f64().expect("numbers") as f32)
        .collect();
    let width = shape.last().copied().unwrap_or(1);
    data.chunks(width).map(<[f32]>::to_vec).collect()
}

/// A reference array (`{shape, dtype, key}`) of fixture `name`, read from
/// `reference.safetensors` (large arrays are only there): shape and f32
/// values, row-major.
pub fn reference_array(name: &str, array: &Value) -> (Vec<usize>, Vec<f32>) {
    let key = array["key"].as_str().expect("array has a key");
    let path = fixture_model(name).join("reference.safetensors");
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
    (view.shape().to_vec(), data)
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Copies a folder recursively (fixtures are read-only; tests corrupt copies).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
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

/// Lays out `model_dir` as the Python Hub cache would hold `id@main` (blobs
/// named by sha256, snapshot symlinks, `refs/main`), as `huggingface_hub`
/// writes it; returns the hub folder.
pub fn make_hub_cache(hub: &std::path::Path, id: &str, model_dir: &std::path::Path) -> PathBuf {
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
