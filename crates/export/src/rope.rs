//! RoPE inverse frequencies for the `rope_scaling` types whose frequencies
//! do not change with the sequence length (`default`, `linear`, `llama3`),
//! computed in f32 as `transformers`' `modeling_rope_utils.py` does. The
//! graph multiplies them by `position_ids`, so any position works.
//! `dynamic` and `longrope` switch frequencies at run time and `yarn` is
//! not written yet: they are refused by name.

use serde_json::Value;

/// `1 / base ** (arange(0, dim, 2) / dim)` in f32.
fn default_inv_freq(base: f32, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect()
}

/// The inverse frequencies `[dim / 2]` for `config.rope_scaling`, or why
/// they cannot be exported.
pub fn inv_freq(theta: f64, dim: usize, rope_scaling: Option<&Value>) -> Result<Vec<f32>, String> {
    if dim < 2 || !dim.is_multiple_of(2) {
        return Err(format!("the rotary dimension must be even, got {dim}"));
    }
    let map = match rope_scaling {
        None | Some(Value::Null) => return Ok(default_inv_freq(theta as f32, dim)),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("rope_scaling must be an object, got {other}")),
    };
    let rope_type = map
        .get("type")
        .or_else(|| map.get("rope_type"))
        .and_then(Value::as_str)
        .ok_or("rope_scaling has no rope_type (or type)")?;
    let number = |key: &str| {
        map.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("rope_scaling ({rope_type}) needs '{key}' as a number"))
    };
    let base = default_inv_freq(theta as f32, dim);
    match rope_type {
        "default" => Ok(base),
        "linear" => {
            let factor = number("factor")? as f32;
            Ok(base.into_iter().map(|f| f / factor).collect())
        }
        "llama3" => {
            let factor = number("factor")?;
            let low = number("low_freq_factor")?;
            let high = number("high_freq_factor")?;
            let old = number("original_max_position_embeddings")?;
            let (low_wavelen, high_wavelen) = ((old / low) as f32, (old / high) as f32);
            let factor32 = factor as f32;
            Ok(base
                .into_iter()
                .map(|f| {
                    let wavelen = (1.0 / f) * std::f64::consts::TAU as f32;
                    let scaled = if wavelen > low_wavelen {
                        f / factor32
                    } else {
                        f
                    };
                    let smooth = ((1.0 / wavelen) * old as f32 - low as f32) / (high - low) as f32;
                    let smoothed = (1.0 - smooth) * scaled / factor32 + smooth * scaled;
                    if wavelen >= high_wavelen && wavelen <= low_wavelen {
                        smoothed
                    } else {
                        scaled
                    }
                })
                .collect())
        }
        other => Err(format!(
            "rope_scaling type '{other}' is not exported (supported: default, linear, llama3)"
        )),
    }
}
