//! A plain f32 tensor: shape + row-major data, for callers with no tensor
//! library of their own (ONNX Runtime takes `(shape, Vec<f32>)` as is).

use crate::{PatchError, TensorLike};

/// Shape and row-major data; `shape.iter().product() == data.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl F32Tensor {
    /// A tensor; an error when `data` does not fill `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, PatchError> {
        let want: usize = shape.iter().product();
        if want != data.len() {
            return Err(PatchError::Cache {
                cache: "F32Tensor".to_owned(),
                reason: format!(
                    "shape {shape:?} holds {want} values, data has {}",
                    data.len()
                ),
            });
        }
        Ok(Self { shape, data })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Shape and data.
    pub fn into_parts(self) -> (Vec<usize>, Vec<f32>) {
        (self.shape, self.data)
    }
}

impl TensorLike for F32Tensor {
    fn shape(&self) -> Vec<usize> {
        self.shape.clone()
    }
}
