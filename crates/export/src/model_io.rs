//! Reading and writing `.onnx` files (protobuf, weights inline).

use super::proto::ModelProto;
use super::OnnxError;
use prost::Message;
use std::path::Path;

/// Parses a model from bytes.
pub fn decode(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        path: "<bytes>".to_owned(),
        reason: e.to_string(),
    })
}

/// Reads a model file.
pub fn read(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.display().to_string(),
        source,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| OnnxError::Decode {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Serialises a model.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes a model file (through a temporary file, so a reader never sees
/// half of one).
pub fn write(model: &ModelProto, path: &Path) -> Result<(), OnnxError> {
    let io = |source| OnnxError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("onnx.tmp");
    std::fs::write(&tmp, encode(model)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
