//! Pieces every decoder's self-attention shares: the key/value cache, the
//! causal mask and scaled dot-product attention.

use candle_core::{DType, Device, Result, Tensor};

/// Keys and values of the positions seen so far, `[batch, heads, seq, dim]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    kv: Option<(Tensor, Tensor)>,
}

impl KvCache {
    /// Appends the new positions and returns all keys and values.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match &self.kv {
            None => (k.contiguous()?, v.contiguous()?),
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
        };
        self.kv = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// All keys and values cached, if any.
    pub fn get(&self) -> Option<(Tensor, Tensor)> {
        self.kv.clone()
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Nothing cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.kv = None;
    }
}

/// Additive mask `[q_len, kv_len]` hiding later positions: query `i` (at
/// absolute position `kv_len - q_len + i`) sees keys up to its own position.
/// `None` for a single query, which sees everything cached.
pub fn causal_mask(q_len: usize, kv_len: usize, device: &Device) -> Result<Option<Tensor>> {
    if q_len <= 1 {
        return Ok(None);
    }
    let offset = kv_len - q_len;
    let mask: Vec<f32> = (0..q_len)
        .flat_map(|i| {
            (0..kv_len).map(move |j| {
                if j > i + offset {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Some(Tensor::from_vec(mask, (q_len, kv_len), device)?))
}

/// `softmax(q kᵀ · scale + mask) v` with the softmax in f32.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let dtype = q.dtype();
    let q = q.to_dtype(DType::F32)?.contiguous()?;
    let k = k.to_dtype(DType::F32)?.contiguous()?;
    let v = v.to_dtype(DType::F32)?.contiguous()?;
    let mut scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs.matmul(&v)?.to_dtype(dtype)
}

/// Repeats each key/value head `n_rep` times (grouped-query attention):
/// `[b, kv_heads, s, d]` → `[b, kv_heads * n_rep, s, d]`.
pub fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, heads, s, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, heads, n_rep, s, d))?
        .reshape((b, heads * n_rep, s, d))
}

/// `[b, s, heads * d]` → `[b, heads, s, d]`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, s, hidden) = x.dims3()?;
    x.reshape((b, s, heads, hidden / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// `[b, heads, s, d]` → `[b, s, heads * d]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, heads, s, d) = x.dims4()?;
    x.transpose(1, 2)?.contiguous()?.reshape((b, s, heads * d))
}

/// The last position of `[1, s, vocab]` logits as f32 `[vocab]`.
pub fn last_position(logits: &Tensor) -> Result<Tensor> {
    let s = logits.dim(1)?;
    logits
        .narrow(1, s - 1, 1)?
        .squeeze(1)?
        .squeeze(0)?
        .to_dtype(DType::F32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mask_sees_the_cached_prefix() {
        let m = causal_mask(2, 4, &Device::Cpu).unwrap().unwrap();
        let rows: Vec<Vec<f32>> = m.to_vec2().unwrap();
        assert_eq!(rows[0], [0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(rows[1], [0.0, 0.0, 0.0, 0.0]);
        assert!(causal_mask(1, 4, &Device::Cpu).unwrap().is_none());
    }
}
