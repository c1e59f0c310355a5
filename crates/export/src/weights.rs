//! Checkpoint tensors read from safetensors files (shards merged) as f32,
//! whatever dtype they are stored in.

use super::OnnxError;
use ipfs_accelerate_loader::ResolvedFile;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

/// The tensors of one checkpoint.
#[derive(Debug)]
pub struct Weights {
    model: String,
    /// File bytes; tensors are decoded on request.
    files: Vec<(String, Vec<u8>)>,
    /// Tensor name -> index into `files`.
    index: HashMap<String, usize>,
}

impl Weights {
    /// Reads every `.safetensors` file among `files`.
    pub fn read(model: &str, files: &[ResolvedFile]) -> Result<Self, OnnxError> {
        let mut out = Self {
            model: model.to_owned(),
            files: Vec::new(),
            index: HashMap::new(),
        };
        for file in files.iter().filter(|f| f.file.ends_with(".safetensors")) {
            let bytes = std::fs::read(&file.path).map_err(|source| OnnxError::Io {
                path: file.path.display().to_string(),
                source,
            })?;
            let names: Vec<String> = SafeTensors::deserialize(&bytes)
                .map_err(|e| out.error(format!("{}: {e}", file.file)))?
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let at = out.files.len();
            for name in names {
                out.index.insert(name, at);
            }
            out.files.push((file.file.clone(), bytes));
        }
        Ok(out)
    }

    fn error(&self, reason: String) -> OnnxError {
        OnnxError::Weights {
            model: self.model.clone(),
            reason,
        }
    }

    /// True when the checkpoint holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The first of `names` the checkpoint holds (checkpoints differ in
    /// prefixes, e.g. `bert.` or `transformer.`).
    pub fn first_of<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names.iter().copied().find(|n| self.has(n))
    }

    /// Tensor `name` as f32, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, OnnxError> {
        let &at = self
            .index
            .get(name)
            .ok_or_else(|| self.error(format!("tensor '{name}' is missing")))?;
        let (file, bytes) = &self.files[at];
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| self.error(format!("{file}: {e}")))?;
        let view = tensors
            .tensor(name)
            .map_err(|e| self.error(format!("{file}: {name}: {e}")))?;
        if view.shape() != shape {
            return Err(self.error(format!(
                "'{name}' has shape {:?}, the config says {shape:?}",
                view.shape()
            )));
        }
        let data = view.data();
        Ok(match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            other => {
                return Err(self.error(format!(
                    "'{name}' is {other:?}; only float tensors can be exported"
                )))
            }
        })
    }

    /// A Linear's weight `[out, in]` transposed to `[in, out]`, ready for
    /// `MatMul(x, w)`.
    pub fn get_transposed(
        &self,
        name: &str,
        out: usize,
        inp: usize,
    ) -> Result<Vec<f32>, OnnxError> {
        let w = self.get(name, &[out, inp])?;
        Ok(transpose(&w, out, inp))
    }
}

/// `[rows, cols]` -> `[cols, rows]`.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}
