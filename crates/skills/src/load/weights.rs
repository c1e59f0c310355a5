//! Reading safetensors weights into a `VarBuilder`, one tensor at a time.
//!
//! Why not `candle_core::safetensors::load`: it reads the whole file into
//! memory and then copies every tensor out of it, so loading peaks at twice
//! the weights. Why not a memory map: candle's CPU tensors own their
//! storage, so a mapped file is copied anyway, and the mapped pages count as
//! resident too (the same 2×), for an `unsafe` block. Reading each
//! tensor's bytes with positioned reads peaks at the weights plus the
//! largest tensor, with no `unsafe`.

use super::patches;
use crate::SkillError;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ipfs_accelerate_loader::{Loader, ResolvedFile};
use serde_json::Value;
use std::collections::HashMap;

/// Loads every `.safetensors` file among `files` (shards merged) on `device`,
/// then applies the checkpoint patches `loader` allows for a model with
/// `config` (old tensor names renamed, stale buffers dropped).
/// A truncated or corrupt file is an error naming the file.
pub(crate) fn var_builder(
    loader: &Loader,
    model: &str,
    config: &Value,
    files: &[ResolvedFile],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, SkillError> {
    let mut tensors = HashMap::new();
    for file in files.iter().filter(|f| f.file.ends_with(".safetensors")) {
        read_safetensors(&file.path, device, &mut tensors).map_err(|source| {
            SkillError::Weights {
                model: model.to_owned(),
                source: Box::new(WeightsFileError {
                    file: file.file.clone(),
                    source,
                }),
            }
        })?;
    }
    patches::patch_tensors(loader, model, config, &mut tensors)?;
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
}

/// Error texts from libraries can span lines; answers are one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A malformed model file, as a load error naming the file.
pub(crate) fn malformed(model: &str, file: &str, reason: impl std::fmt::Display) -> SkillError {
    SkillError::Load(ipfs_accelerate_loader::LoadError::Malformed {
        model: model.to_owned(),
        file: file.to_owned(),
        reason: one_line(&reason.to_string()),
    })
}

/// A safetensors file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {source}")]
pub(crate) struct WeightsFileError {
    /// The file, as the model names it.
    file: String,
    /// Why.
    #[source]
    source: SafetensorsError,
}

/// Why a safetensors file cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SafetensorsError {
    /// Reading failed (or the file ends early).
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The JSON header is not a safetensors header.
    #[error("the header is not valid: {0}")]
    Header(String),
    /// The header does not parse.
    #[error("the header is not valid JSON: {0}")]
    HeaderJson(#[from] serde_json::Error),
    /// A tensor's bytes do not make a tensor.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// One entry of a safetensors header.
#[derive(serde::Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// Headers larger than this are refused (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Reads every tensor of the safetensors file at `path` into `into`, one
/// tensor's bytes in memory at a time.
fn read_safetensors(
    path: &std::path::Path,
    device: &Device,
    into: &mut HashMap<String, Tensor>,
) -> Result<(), SafetensorsError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
        return Err(SafetensorsError::Header(format!(
            "it declares {header_len} header bytes in a {file_len}-byte file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    let mut entries: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)?;
    entries.remove("__metadata__");
    let data_start = 8 + header_len;
    let data_len = file_len - data_start;
    for (name, entry) in entries {
        let entry: TensorEntry = serde_json::from_value(entry)?;
        let dtype = dtype_of(&entry.dtype).ok_or_else(|| {
            SafetensorsError::Header(format!("{name}: dtype {} is not supported", entry.dtype))
        })?;
        let [start, end] = entry.data_offsets;
        let elements: usize = entry.shape.iter().product();
        let expected = elements as u64 * dtype.size_in_bytes() as u64;
        if start > end || end > data_len || end - start != expected {
            return Err(SafetensorsError::Header(format!(
                "{name}: offsets {start}..{end} do not hold a {:?} {} tensor in {data_len} data bytes",
                entry.shape, entry.dtype
            )));
        }
        file.seek(SeekFrom::Start(data_start + start))?;
        let tensor = read_tensor(&mut file, dtype, elements, &entry.shape, device)?;
        into.insert(name, tensor);
    }
    Ok(())
}

/// Bytes converted per read: the only copy of a tensor's data besides the
/// tensor itself.
const CHUNK_BYTES: usize = 1 << 20;

/// Reads `elements` little-endian values of `dtype` from `file`'s position
/// straight into the tensor's own vector, a chunk at a time.
fn read_tensor(
    file: &mut impl std::io::Read,
    dtype: DType,
    elements: usize,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor, SafetensorsError> {
    macro_rules! values {
        ($t:ty) => {{
            const SIZE: usize = std::mem::size_of::<$t>();
            let mut values: Vec<$t> = Vec::with_capacity(elements);
            let mut chunk = vec![0u8; CHUNK_BYTES.min(elements * SIZE)];
            while values.len() < elements {
                let take = ((elements - values.len()) * SIZE).min(chunk.len());
                file.read_exact(&mut chunk[..take])?;
                values.extend(chunk[..take].chunks_exact(SIZE).map(|b| {
                    let mut le = [0u8; SIZE];
                    le.copy_from_slice(b);
                    <$t>::from_le_bytes(le)
                }));
            }
            Tensor::from_vec(values, shape, device)?
        }};
    }
    Ok(match dtype {
        DType::F32 => values!(f32),
        DType::F64 => values!(f64),
        DType::F16 => values!(half::f16),
        DType::BF16 => values!(half::bf16),
        DType::I64 => values!(i64),
        DType::U32 => values!(u32),
        DType::U8 => values!(u8),
        other => {
            return Err(SafetensorsError::Header(format!(
                "dtype {other:?} is not read here"
            )))
        }
    })
}

/// The candle dtype of a safetensors dtype name.
fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}
