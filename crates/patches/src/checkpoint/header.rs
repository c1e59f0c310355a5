//! Tensor names and shapes from safetensors headers, without reading the
//! data: enough to decide which checkpoint patches apply to a model.

use super::Tensors;
use crate::PatchError;
use std::io::Read;
use std::path::Path;

/// The "patch" name in errors about a header.
const HEADER: &str = "safetensors header";

/// Headers larger than this are not safetensors files we can trust.
const MAX_HEADER: u64 = 100 << 20;

/// name -> shape of every tensor in the safetensors file at `path`.
pub fn read_shapes(path: &Path) -> Result<Tensors<Vec<usize>>, PatchError> {
    let bad = |reason: String| PatchError::Target {
        patch: HEADER.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| PatchError::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|source| PatchError::TargetIo {
            patch: HEADER.to_owned(),
            path: path.to_owned(),
            what: "no header length",
            source,
        })?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(bad(format!("header length {len} is not plausible")));
    }
    let mut header = Vec::new();
    file.take(len)
        .read_to_end(&mut header)
        .map_err(|e| PatchError::io(path, e))?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|source| PatchError::TargetJson {
            patch: HEADER.to_owned(),
            path: path.to_owned(),
            what: "header is not JSON",
            source,
        })?;
    json.into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            let shape = info
                .get("shape")
                .and_then(|s| s.as_array())
                .and_then(|dims| {
                    dims.iter()
                        .map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                })
                .ok_or_else(|| bad(format!("tensor {name} has no shape")))?;
            Ok((name, shape))
        })
        .collect()
}
