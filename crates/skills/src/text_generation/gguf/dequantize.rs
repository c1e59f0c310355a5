//! A GGUF file rewritten in memory with every tensor dequantized to f32.
//!
//! `quantized_llama` multiplies quantized weights by activations that it
//! quantizes too (Q8 blocks, as llama.cpp does); on a small model that moves
//! logits by tenths and can flip a close greedy choice. With f32 tensors it
//! keeps plain matrices instead (candle dequantizes F32/F16 tensors at
//! load), so the model computes what `transformers` computes from the same
//! file (it dequantizes GGUF to f32 on load).

use crate::load::weights::one_line;
use crate::SkillError;
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};

/// GGUF's default tensor alignment; kept so offsets stay aligned.
const ALIGNMENT: usize = 32;

/// The f32 twin of `content`: a header whose tensors are all F32 and the
/// bytes they point into.
pub(crate) fn dequantized<R: Read + Seek>(
    model: &str,
    content: Content,
    reader: &mut R,
) -> Result<(Content, Cursor<Vec<u8>>), SkillError> {
    let failed = |tensor: &str, e: candle_core::Error| SkillError::Weights {
        model: model.to_owned(),
        source: format!("dequantizing '{tensor}': {}", one_line(&e.to_string())).into(),
    };
    let mut data = Vec::new();
    let mut infos = HashMap::with_capacity(content.tensor_infos.len());
    // Sorted, so the same file always gives the same layout.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &content.tensor_infos[name];
        let values: Vec<f32> = info
            .read(reader, content.tensor_data_offset, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(|e| failed(name, e))?;
        data.resize(data.len().next_multiple_of(ALIGNMENT), 0);
        let offset = data.len() as u64;
        data.reserve(values.len() * 4);
        for value in values {
            data.extend_from_slice(&value.to_le_bytes());
        }
        infos.insert(
            name.clone(),
            TensorInfo {
                ggml_dtype: GgmlDType::F32,
                shape: info.shape.clone(),
                offset,
            },
        );
    }
    let header = Content {
        magic: content.magic,
        metadata: content.metadata,
        tensor_infos: infos,
        tensor_data_offset: 0,
    };
    Ok((header, Cursor::new(data)))
}
