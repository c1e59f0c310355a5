//! A fully connected layer (`x · Wᵀ + b`) whose f32 product of 1 to 16 rows
//! on the CPU (decoding, short prompts) goes through our kernel
//! ([`ipfs_accelerate_kernels::matvec`]); every other shape, dtype and
//! device goes through candle's, as `candle_nn::Linear` does.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `candle_nn::Linear` with the few-rows fast path.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// `weight` is `[out, in]`; a weight that is not contiguous (a
    /// transposed view) still works, through candle's product.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            inner: candle_nn::Linear::new(weight, bias),
        }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match ipfs_accelerate_kernels::linear_few_rows(x, self.inner.weight())? {
            Some(y) => match self.inner.bias() {
                Some(bias) => y.broadcast_add(bias),
                None => Ok(y),
            },
            None => self.inner.forward(x),
        }
    }
}

/// `candle_nn::linear_b`'s layout: `weight` `[out, in]`, `bias` `[out]`
/// when `bias`.
pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = if bias {
        Some(vb.get(out_dim, "bias")?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// `candle_nn::linear`: with a bias.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, true, vb)
}

/// `candle_nn::linear_no_bias`.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, false, vb)
}
