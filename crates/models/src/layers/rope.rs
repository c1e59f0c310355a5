//! Rotary position embeddings (RoPE) with every `rope_scaling` type
//! `transformers` 4.57 knows (`modeling_rope_utils.py`): `default`,
//! `linear`, `dynamic` (NTK), `yarn`, `longrope` and `llama3`.
//!
//! The inverse frequencies are computed in f32 the way torch computes them
//! there, so positions far from zero rotate by the same angles. `dynamic`
//! and `longrope` change their frequencies with the sequence length at each
//! forward call, exactly when `transformers`' `dynamic_rope_update` does;
//! keys already in the cache keep the rotation they were given.

use crate::ModelError;
use candle_core::{Device, Result, Tensor};
use serde_json::Value;

/// The rope types [`RopeScaling::from_config`] accepts.
pub const ROPE_TYPES: [&str; 6] = ["default", "linear", "dynamic", "yarn", "longrope", "llama3"];

/// `config.rope_scaling`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_scaling: null` or `rope_type: "default"`).
    Default,
    /// Position interpolation: frequencies divided by `factor`.
    Linear {
        /// Divides every frequency.
        factor: f64,
    },
    /// NTK-aware scaling recomputed when the sequence outgrows
    /// `max_position_embeddings`.
    Dynamic {
        /// How much the base grows per `max_position_embeddings`.
        factor: f64,
    },
    /// YaRN: interpolation for low frequencies, extrapolation for high ones,
    /// and an attention factor scaling cos/sin.
    Yarn {
        /// Interpolation factor.
        factor: f64,
        /// Explicit cos/sin scale; derived from `factor` (and `mscale`) if absent.
        attention_factor: Option<f64>,
        /// Extrapolation boundary (rotations); default 32.
        beta_fast: f64,
        /// Interpolation boundary (rotations); default 1.
        beta_slow: f64,
        /// Numerator of the derived attention factor (with `mscale_all_dim`).
        mscale: Option<f64>,
        /// Denominator of the derived attention factor (with `mscale`).
        mscale_all_dim: Option<f64>,
        /// Pre-YaRN context length; `max_position_embeddings` if absent.
        original_max_position_embeddings: Option<f64>,
        /// Round the correction range outwards to whole dimensions.
        truncate: bool,
    },
    /// LongRoPE (Phi-3): per-dimension factors, `long_factor` once the
    /// sequence exceeds the original context.
    LongRope {
        /// Factors while the sequence fits the original context.
        short_factor: Vec<f64>,
        /// Factors beyond it.
        long_factor: Vec<f64>,
        /// Context extension ratio (overridden by a top-level
        /// `original_max_position_embeddings`).
        factor: Option<f64>,
        /// Explicit cos/sin scale.
        attention_factor: Option<f64>,
    },
    /// Llama 3.1: low frequencies divided by `factor`, a smooth band between.
    Llama3 {
        /// Divides low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Pretraining context length.
        original_max_position_embeddings: f64,
    },
}

impl RopeScaling {
    /// The `rope_type` this is.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Linear { .. } => "linear",
            Self::Dynamic { .. } => "dynamic",
            Self::Yarn { .. } => "yarn",
            Self::LongRope { .. } => "longrope",
            Self::Llama3 { .. } => "llama3",
        }
    }

    /// Parses `config.rope_scaling` (`None` / `null` is plain RoPE). The
    /// legacy `type` key wins over `rope_type`, as `transformers`' config
    /// copies `type` into `rope_type`.
    pub fn from_config(rope_scaling: Option<&Value>) -> std::result::Result<Self, ModelError> {
        let map = match rope_scaling {
            None | Some(Value::Null) => return Ok(Self::Default),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "rope_scaling must be an object, got {other}"
                )))
            }
        };
        let rope_type = map
            .get("type")
            .or_else(|| map.get("rope_type"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ModelError::Config("rope_scaling has no rope_type (or type)".to_owned())
            })?;
        // Present-and-truthy, as Python's `get(key) or default`.
        let number = |key: &str| -> std::result::Result<Option<f64>, ModelError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                    ModelError::Config(format!("rope_scaling.{key} must be a number, got {v}"))
                }),
            }
        };
        let required = |key: &str| -> std::result::Result<f64, ModelError> {
            number(key)?.ok_or_else(|| {
                ModelError::Config(format!("rope_scaling ({rope_type}) needs '{key}'"))
            })
        };
        let factors = |key: &str| -> std::result::Result<Vec<f64>, ModelError> {
            map.get(key)
                .and_then(Value::as_array)
                .and_then(|items| items.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| {
                    ModelError::Config(format!(
                        "rope_scaling ({rope_type}) needs '{key}' as a list of numbers"
                    ))
                })
        };
        // A factor divides frequencies and positions: 0, negative or NaN
        // would give NaN logits at inference instead of an error here.
        let factor = || -> std::result::Result<f64, ModelError> {
            let factor = required("factor")?;
            if factor.is_finite() && factor > 0.0 {
                Ok(factor)
            } else {
                Err(ModelError::Config(format!(
                    "rope_scaling.factor must be a positive number, got {factor}"
                )))
            }
        };
        let truthy = |v: Option<f64>| v.filter(|x| *x != 0.0);
        Ok(match rope_type {
            "default" => Self::Default,
            "linear" => Self::Linear { factor: factor()? },
            "dynamic" => Self::Dynamic { factor: factor()? },
            "yarn" => Self::Yarn {
                factor: factor()?,
                attention_factor: number("attention_factor")?,
                beta_fast: truthy(number("beta_fast")?).unwrap_or(32.0),
                beta_slow: truthy(number("beta_slow")?).unwrap_or(1.0),
                mscale: number("mscale")?,
                mscale_all_dim: number("mscale_all_dim")?,
                original_max_position_embeddings: truthy(number(
                    "original_max_position_embeddings",
                )?),
                // `get("truncate", True)`: absent is true, null is false.
                truncate: match map.get("truncate") {
                    None => true,
                    Some(v) => v.as_bool().unwrap_or(false),
                },
            },
            "longrope" => Self::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                factor: number("factor")?,
                attention_factor: number("attention_factor")?,
            },
            "llama3" => Self::Llama3 {
                factor: factor()?,
                low_freq_factor: required("low_freq_factor")?,
                high_freq_factor: required("high_freq_factor")?,
                original_max_position_embeddings: required("original_max_position_embeddings")?,
            },
            other => {
                return Err(ModelError::Config(format!(
                    "unsupported rope_scaling type '{other}'; supported: {}",
                    ROPE_TYPES.join(", ")
                )))
            }
        })
    }
}

/// The config values RoPE reads besides `rope_scaling`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeBase {
    /// `rope_theta`.
    pub theta: f64,
    /// Rotated dimensions per head (even).
    pub dim: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// A top-level `original_max_position_embeddings` (Phi-3 style; read by
    /// `longrope` only, as in `transformers`).
    pub original_max_position_embeddings: Option<usize>,
}

/// The rotary embedding of one model, with the state `dynamic` and
/// `longrope` carry between forward calls.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    base: RopeBase,
    scaling: RopeScaling,
    /// Frequencies at load time.
    original_inv_freq: Vec<f32>,
    /// Frequencies in use.
    inv_freq: Vec<f32>,
    /// `longrope`'s frequencies beyond the original context.
    long_inv_freq: Vec<f32>,
    /// Scales cos and sin (YaRN / LongRoPE attention factor).
    attention_scaling: f32,
    /// `dynamic`: the longest sequence the frequencies were computed for.
    max_seq_len_cached: usize,
}

impl RotaryEmbedding {
    /// Builds the embedding; a config `transformers` would reject (or crash
    /// on) is an error saying why.
    pub fn new(base: RopeBase, scaling: RopeScaling) -> std::result::Result<Self, ModelError> {
        if base.dim < 2 || !base.dim.is_multiple_of(2) {
            return Err(ModelError::Config(format!(
                "the rotary dimension must be even, got {}",
                base.dim
            )));
        }
        if !(base.theta.is_finite() && base.theta > 0.0) {
            return Err(ModelError::Config(format!(
                "rope_theta must be positive, got {}",
                base.theta
            )));
        }
        if let RopeScaling::LongRope {
            short_factor,
            long_factor,
            factor,
            ..
        } = &scaling
        {
            for (name, list) in [("short_factor", short_factor), ("long_factor", long_factor)] {
                if list.len() != base.dim / 2 {
                    return Err(ModelError::Config(format!(
                        "rope_scaling.{name} has {} entries, expected {} (head_dim / 2)",
                        list.len(),
                        base.dim / 2
                    )));
                }
            }
            if factor.is_none() && base.original_max_position_embeddings.is_none() {
                return Err(
                    ModelError::Config("rope_scaling (longrope) needs 'factor' or a top-level original_max_position_embeddings".to_owned()),
                );
            }
        }
        let mut rope = Self {
            base,
            scaling,
            original_inv_freq: Vec::new(),
            inv_freq: Vec::new(),
            long_inv_freq: Vec::new(),
            attention_scaling: 1.0,
            max_seq_len_cached: base.max_position_embeddings,
        };
        let (inv_freq, attention) = rope.init(None);
        rope.original_inv_freq = inv_freq.clone();
        rope.inv_freq = inv_freq;
        rope.attention_scaling = attention as f32;
        if matches!(rope.scaling, RopeScaling::LongRope { .. }) {
            rope.long_inv_freq = rope.init(Some(rope.longrope_original() + 1)).0;
        }
        Ok(rope)
    }

    /// Back to the state at load time. `transformers` keeps a grown
    /// `dynamic` state across `generate` calls; we start every sequence
    /// fresh, as a freshly loaded model does.
    pub fn reset(&mut self) {
        self.inv_freq.clone_from(&self.original_inv_freq);
        self.max_seq_len_cached = self.base.max_position_embeddings;
    }

    /// The frequencies now in use (after the last [`Self::cos_sin`]).
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// cos and sin `[len, dim / 2]` for positions `offset..offset + len`,
    /// after updating the frequencies for a sequence of `offset + len`.
    pub fn cos_sin(
        &mut self,
        offset: usize,
        len: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        self.update(offset + len);
        let half = self.base.dim / 2;
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for position in offset..offset + len {
            for &f in &self.inv_freq {
                let angle = position as f32 * f;
                cos.push(angle.cos() * self.attention_scaling);
                sin.push(angle.sin() * self.attention_scaling);
            }
        }
        Ok((
            Tensor::from_vec(cos, (len, half), device)?,
            Tensor::from_vec(sin, (len, half), device)?,
        ))
    }

    /// `dynamic_rope_update`: runs before every forward with the longest
    /// position + 1.
    fn update(&mut self, seq_len: usize) {
        match self.scaling {
            RopeScaling::Dynamic { .. } => {
                let original = self.base.max_position_embeddings;
                if seq_len > self.max_seq_len_cached {
                    let (inv_freq, attention) = self.init(Some(seq_len));
                    self.inv_freq = inv_freq;
                    self.attention_scaling = attention as f32;
                    self.max_seq_len_cached = seq_len;
                }
                if seq_len < original && self.max_seq_len_cached > original {
                    self.inv_freq.clone_from(&self.original_inv_freq);
                    self.max_seq_len_cached = original;
                }
            }
            RopeScaling::LongRope { .. } => {
                if seq_len > self.longrope_original() {
                    self.inv_freq.clone_from(&self.long_inv_freq);
                } else {
                    self.inv_freq.clone_from(&self.original_inv_freq);
                }
            }
            _ => {}
        }
    }

    fn longrope_original(&self) -> usize {
        self.base
            .original_max_position_embeddings
            .unwrap_or(self.base.max_position_embeddings)
    }

    /// `ROPE_INIT_FUNCTIONS[rope_type](config, device, seq_len)`: the
    /// inverse frequencies and the attention factor.
    fn init(&self, seq_len: Option<usize>) -> (Vec<f32>, f64) {
        let RopeBase {
            theta,
            dim,
            max_position_embeddings: max_positions,
            ..
        } = self.base;
        match &self.scaling {
            RopeScaling::Default => (default_inv_freq(theta as f32, dim), 1.0),
            RopeScaling::Linear { factor } => {
                let factor = *factor as f32;
                let inv = default_inv_freq(theta as f32, dim)
                    .into_iter()
                    .map(|f| f / factor)
                    .collect();
                (inv, 1.0)
            }
            RopeScaling::Dynamic { factor } => {
                let exponent = dim as f64 / (dim - 2) as f64;
                let base = match seq_len {
                    // At load time the seq_len is max_position_embeddings, a
                    // Python int: the base stays a double.
                    None => {
                        let s = max_positions as f64;
                        theta
                            * ((factor * s / max_positions as f64) - (factor - 1.0)).powf(exponent)
                    }
                    // Later it is a tensor: torch computes the base in f32.
                    Some(seq_len) => {
                        let s = seq_len.max(max_positions) as f32;
                        let ratio =
                            (*factor as f32 * s) / max_positions as f32 - (factor - 1.0) as f32;
                        f64::from(theta as f32 * ratio.powf(exponent as f32))
                    }
                };
                (default_inv_freq(base as f32, dim), 1.0)
            }
            RopeScaling::Yarn {
                factor,
                attention_factor,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
                original_max_position_embeddings,
                truncate,
            } => yarn(
                theta,
                dim,
                *factor,
                *attention_factor,
                (*beta_fast, *beta_slow),
                (*mscale, *mscale_all_dim),
                original_max_position_embeddings.unwrap_or(max_positions as f64),
                *truncate,
            ),
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                factor,
                attention_factor,
            } => {
                let (factor, original) = match self.base.original_max_position_embeddings {
                    Some(original) => (max_positions as f64 / original as f64, original),
                    None => (factor.unwrap_or(1.0), max_positions),
                };
                let attention = attention_factor.unwrap_or_else(|| {
                    if factor <= 1.0 {
                        1.0
                    } else {
                        (1.0 + factor.ln() / (original as f64).ln()).sqrt()
                    }
                });
                let ext = if seq_len.is_some_and(|s| s > original) {
                    long_factor
                } else {
                    short_factor
                };
                let inv = (0..dim / 2)
                    .map(|i| 1.0 / (ext[i] as f32 * (theta as f32).powf(exponent_of(i, dim))))
                    .collect();
                (inv, attention)
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = (old / low_freq_factor) as f32;
                let high_wavelen = (old / high_freq_factor) as f32;
                let factor32 = *factor as f32;
                let inv = default_inv_freq(theta as f32, dim)
                    .into_iter()
                    .map(|f| {
                        // `2π / inv_freq` is `reciprocal(inv_freq) * 2π` in torch.
                        let wavelen = (1.0 / f) * std::f64::consts::TAU as f32;
                        let scaled = if wavelen > low_wavelen {
                            f / factor32
                        } else {
                            f
                        };
                        let smooth = ((1.0 / wavelen) * *old as f32 - *low_freq_factor as f32)
                            / (high_freq_factor - low_freq_factor) as f32;
                        let smoothed = (1.0 - smooth) * scaled / factor32 + smooth * scaled;
                        // transformers: `~(w < high) * ~(w > low)`; w is never NaN.
                        let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                        if medium {
                            smoothed
                        } else {
                            scaled
                        }
                    })
                    .collect();
                (inv, 1.0)
            }
        }
    }
}

/// `arange(0, dim, 2).float() / dim` at index `i`.
fn exponent_of(i: usize, dim: usize) -> f32 {
    (2 * i) as f32 / dim as f32
}

/// `1 / base ** (arange(0, dim, 2) / dim)` in f32.
fn default_inv_freq(base: f32, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| 1.0 / base.powf(exponent_of(i, dim)))
        .collect()
}

/// `_compute_yarn_parameters`.
#[allow(clippy::too_many_arguments)]
fn yarn(
    theta: f64,
    dim: usize,
    factor: f64,
    attention_factor: Option<f64>,
    (beta_fast, beta_slow): (f64, f64),
    (mscale, mscale_all_dim): (Option<f64>, Option<f64>),
    original: f64,
    truncate: bool,
) -> (Vec<f32>, f64) {
    let get_mscale = |scale: f64, m: f64| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * m * scale.ln() + 1.0
        }
    };
    let attention = attention_factor.unwrap_or_else(|| match (mscale, mscale_all_dim) {
        (Some(m), Some(all)) if m != 0.0 && all != 0.0 => {
            get_mscale(factor, m) / get_mscale(factor, all)
        }
        _ => get_mscale(factor, 1.0),
    });
    let correction_dim = |rotations: f64| {
        (dim as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln())
            / (2.0 * theta.ln())
    };
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min((dim - 1) as f64);
    if low == high {
        high += 0.001; // as transformers: avoids dividing by zero
    }
    let inv = (0..dim / 2)
        .map(|i| {
            let pos_freq = (theta as f32).powf(exponent_of(i, dim));
            let extrapolation = 1.0 / pos_freq;
            let interpolation = 1.0 / (factor as f32 * pos_freq);
            let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
            let extrapolation_factor = 1.0 - ramp;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect();
    (inv, attention)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> RopeBase {
        RopeBase {
            theta: 10000.0,
            dim: 8,
            max_position_embeddings: 16,
            original_max_position_embeddings: None,
        }
    }

    #[test]
    fn legacy_type_key_wins_and_bad_configs_are_refused() {
        let parsed = RopeScaling::from_config(Some(
            &json!({"type": "linear", "rope_type": "default", "factor": 2.0}),
        ));
        assert_eq!(parsed.unwrap(), RopeScaling::Linear { factor: 2.0 });
        assert_eq!(
            RopeScaling::from_config(None).unwrap(),
            RopeScaling::Default
        );
        assert!(RopeScaling::from_config(Some(&json!({"factor": 2.0}))).is_err());
        assert!(RopeScaling::from_config(Some(&json!({"rope_type": "linear"}))).is_err());
        assert!(RopeScaling::from_config(Some(&json!({"rope_type": "su"}))).is_err());
        let short = RopeScaling::from_config(Some(
            &json!({"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0], "factor": 2.0}),
        ))
        .unwrap();
        assert!(RotaryEmbedding::new(base(), short).is_err());
    }

    #[test]
    fn default_frequencies_are_powers_of_theta() {
        let rope = RotaryEmbedding::new(base(), RopeScaling::Default).unwrap();
        let expected = [1.0, 0.1, 0.01, 0.001];
        for (got, want) in rope.inv_freq().iter().zip(expected) {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn dynamic_grows_past_the_context_and_resets() {
        let mut rope = RotaryEmbedding::new(base(), RopeScaling::Dynamic { factor: 2.0 }).unwrap();
        let original = rope.inv_freq().to_vec();
        rope.cos_sin(0, 16, &Device::Cpu).unwrap();
        assert_eq!(rope.inv_freq(), original);
        rope.cos_sin(16, 1, &Device::Cpu).unwrap();
        assert!(rope.inv_freq()[1] < original[1]);
        // A short sequence goes back to the original frequencies.
        rope.cos_sin(0, 3, &Device::Cpu).unwrap();
        assert_eq!(rope.inv_freq(), original);
    }
}
