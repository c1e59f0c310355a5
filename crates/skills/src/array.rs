//! A float array as `reference.json` stores one (`{shape, data}`), for
//! answers that expose preprocessed inputs or raw outputs.

use candle_core::{DType, Tensor};
use serde::Serialize;

/// A row-major f32 array with its shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl Array {
    /// Copies a tensor out (as f32).
    pub fn from_tensor(tensor: &Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            shape: tensor.dims().to_vec(),
            data: tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        })
    }
}
