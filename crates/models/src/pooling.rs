//! Sentence-transformers pooling (`1_Pooling/config.json`): the config and
//! the pooling itself, shared by the embedding skill and the ONNX exporter.

use candle_core::{DType, Tensor, D};
use serde::Deserialize;

/// Which token vectors are combined into the sentence vector. Several modes
/// concatenate in sentence-transformers' order: cls, max, mean,
/// mean_sqrt_len, weightedmean, lasttoken.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pooling {
    /// `[CLS]` token.
    #[serde(default)]
    pub pooling_mode_cls_token: bool,
    /// Max over tokens.
    #[serde(default)]
    pub pooling_mode_max_tokens: bool,
    /// Mean over tokens.
    #[serde(default)]
    pub pooling_mode_mean_tokens: bool,
    /// Sum over tokens divided by sqrt(length).
    #[serde(default)]
    pub pooling_mode_mean_sqrt_len_tokens: bool,
    /// Position-weighted mean.
    #[serde(default)]
    pub pooling_mode_weightedmean_tokens: bool,
    /// Last real token.
    #[serde(default)]
    pub pooling_mode_lasttoken: bool,
}

impl Default for Pooling {
    /// Mean pooling: what the contract asks for when a model says nothing.
    fn default() -> Self {
        Self {
            pooling_mode_cls_token: false,
            pooling_mode_max_tokens: false,
            pooling_mode_mean_tokens: true,
            pooling_mode_mean_sqrt_len_tokens: false,
            pooling_mode_weightedmean_tokens: false,
            pooling_mode_lasttoken: false,
        }
    }
}

impl Pooling {
    /// True when no mode is set (then mean pooling is used).
    fn is_empty(&self) -> bool {
        !(self.pooling_mode_cls_token
            || self.pooling_mode_max_tokens
            || self.pooling_mode_mean_tokens
            || self.pooling_mode_mean_sqrt_len_tokens
            || self.pooling_mode_weightedmean_tokens
            || self.pooling_mode_lasttoken)
    }

    /// Pools `hidden` `[batch, seq, dim]` under `mask` `[batch, seq]` (1 for
    /// real tokens, right padding) into `[batch, dim * modes]`.
    pub fn apply(&self, hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let mode = if self.is_empty() {
            &Pooling::default()
        } else {
            self
        };
        let mask = mask.to_dtype(hidden.dtype())?;
        let mask3 = mask.unsqueeze(D::Minus1)?; // [b, s, 1]
        let lengths = mask.sum_keepdim(1)?; // [b, 1]
        let summed = hidden.broadcast_mul(&mask3)?.sum(1)?; // [b, d]
        let mut parts = Vec::new();
        if mode.pooling_mode_cls_token {
            parts.push(hidden.narrow(1, 0, 1)?.squeeze(1)?);
        }
        if mode.pooling_mode_max_tokens {
            // Padded positions must never win the max.
            let penalty = ((mask3.ones_like()? - &mask3)? * -1e9)?;
            parts.push(hidden.broadcast_add(&penalty)?.max(1)?);
        }
        if mode.pooling_mode_mean_tokens {
            parts.push(summed.broadcast_div(&lengths.clamp(1e-9, f64::MAX)?)?);
        }
        if mode.pooling_mode_mean_sqrt_len_tokens {
            parts.push(summed.broadcast_div(&lengths.clamp(1e-9, f64::MAX)?.sqrt()?)?);
        }
        if mode.pooling_mode_weightedmean_tokens {
            let seq = hidden.dim(1)?;
            let positions = Tensor::arange(1u32, seq as u32 + 1, hidden.device())?
                .to_dtype(hidden.dtype())?
                .unsqueeze(0)?; // [1, s]
            let weights = mask.broadcast_mul(&positions)?; // [b, s]
            let weighted = hidden
                .broadcast_mul(&weights.unsqueeze(D::Minus1)?)?
                .sum(1)?;
            let total = weights.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
            parts.push(weighted.broadcast_div(&total)?);
        }
        if mode.pooling_mode_lasttoken {
            let last = (lengths.to_dtype(DType::F32)?.squeeze(1)? - 1.0)?
                .clamp(0.0, f64::MAX)?
                .to_dtype(DType::U32)?; // [b]
            let dim = hidden.dim(2)?;
            let index = last
                .reshape(((), 1, 1))?
                .broadcast_as((hidden.dim(0)?, 1, dim))?
                .contiguous()?;
            parts.push(hidden.gather(&index, 1)?.squeeze(1)?);
        }
        Tensor::cat(&parts, 1)
    }
}

/// L2-normalises rows as `torch.nn.functional.normalize` (eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn setup() -> (Tensor, Tensor) {
        // batch 1, seq 3 (last is padding), dim 2
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu).unwrap();
        (hidden, mask)
    }

    fn pooled(p: Pooling) -> Vec<f32> {
        let (h, m) = setup();
        p.apply(&h, &m)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn modes_ignore_padding() {
        let none = Pooling {
            pooling_mode_mean_tokens: false,
            ..Pooling::default()
        };
        assert_eq!(pooled(Pooling::default()), vec![2., 3.]);
        assert_eq!(
            pooled(Pooling {
                pooling_mode_max_tokens: true,
                ..none.clone()
            }),
            vec![3., 4.]
        );
        assert_eq!(
            pooled(Pooling {
                pooling_mode_cls_token: true,
                ..none.clone()
            }),
            vec![1., 2.]
        );
        assert_eq!(
            pooled(Pooling {
                pooling_mode_lasttoken: true,
                ..none.clone()
            }),
            vec![3., 4.]
        );
        let w = pooled(Pooling {
            pooling_mode_weightedmean_tokens: true,
            ..none
        });
        assert!((w[0] - (1. + 2. * 3.) / 3.).abs() < 1e-6);
    }

    #[test]
    fn normalises() {
        let x = Tensor::new(&[[3f32, 4.]], &Device::Cpu).unwrap();
        assert_eq!(
            l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![0.6, 0.8]]
        );
    }
}
