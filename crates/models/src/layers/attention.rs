//! Pieces every family's attention shares: multi-head attention with
//! separate projections, the key/value cache, the causal mask and scaled
//! dot-product attention.

use crate::layers::linear::{linear_b, Linear};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Module, VarBuilder};

/// Multi-head attention with separate query, key, value and output
/// projections (`hidden` → `hidden`), scaled by `head_dim^-0.5`: CLIP's,
/// BART's, wav2vec2's and BERT's attention.
///
/// [`Self::forward`] is the unmasked or fixed-mask case; attentions that
/// cache keys or bias the scores run the steps themselves
/// ([`Self::queries`], [`Self::keys_values`], [`Self::attend`] or
/// [`Self::output`]).
#[derive(Debug)]
pub struct MultiHeadAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl MultiHeadAttention {
    /// From the four projections.
    pub fn new(q: Linear, k: Linear, v: Linear, out: Linear, heads: usize) -> Self {
        Self {
            q,
            k,
            v,
            out,
            heads,
        }
    }

    /// `q_proj`, `k_proj`, `v_proj` and `out_proj` under `vb`, all with a
    /// bias or all without.
    pub fn load(vb: VarBuilder, hidden: usize, heads: usize, bias: bool) -> Result<Self> {
        let projection = |name: &str| linear_b(hidden, hidden, bias, vb.pp(name));
        Ok(Self::new(
            projection("q_proj")?,
            projection("k_proj")?,
            projection("v_proj")?,
            projection("out_proj")?,
            heads,
        ))
    }

    /// `queries` `[b, s, hidden]` attend to `keys_values` `[b, t, hidden]`
    /// (the same tensor for self-attention).
    pub fn forward(
        &self,
        queries: &Tensor,
        keys_values: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q = self.queries(queries)?;
        let (k, v) = self.keys_values(keys_values)?;
        self.attend(&q, &k, &v, mask)
    }

    /// Projected queries `[b, heads, s, head_dim]`.
    pub fn queries(&self, x: &Tensor) -> Result<Tensor> {
        split_heads(&self.q.forward(x)?, self.heads)
    }

    /// Projected keys and values `[b, heads, t, head_dim]`.
    pub fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&self.k.forward(x)?, self.heads)?,
            split_heads(&self.v.forward(x)?, self.heads)?,
        ))
    }

    /// Scaled dot-product attention of projected `q`, `k`, `v`, then the
    /// output projection: `[b, s, hidden]`.
    pub fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let scale = (q.dim(D::Minus1)? as f64).powf(-0.5);
        self.output(&attend(q, k, v, scale, mask)?)
    }

    /// The output projection of attended heads `[b, heads, s, head_dim]`.
    pub fn output(&self, heads: &Tensor) -> Result<Tensor> {
        self.out.forward(&merge_heads(heads)?)
    }
}

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
