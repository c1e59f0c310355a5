//! The structural numbers of a config, checked when it is parsed: a zero
//! head count, a width the heads do not divide or an absurd size would
//! otherwise panic inside a tensor operation or allocate without bound,
//! at inference rather than at load. Every family's config implements
//! [`CheckConfig`], and [`crate::parse_config`] runs it.

use crate::ModelError;

/// A config that can say whether the network it describes can be built.
pub trait CheckConfig {
    /// An error naming the first unusable value.
    fn check(&self) -> Result<(), ModelError>;
}

/// Widths (hidden, intermediate, projection sizes) at most: four times the
/// widest published checkpoints'.
pub const MAX_WIDTH: usize = 1 << 18;
/// Layers, heads, channels, kernel sizes and the like at most.
pub const MAX_COUNT: usize = 4096;
/// Positions at most (RoPE and position tables are sized by them).
pub const MAX_POSITIONS: usize = 1 << 20;
/// Vocabulary entries at most.
pub const MAX_VOCAB: usize = 1 << 22;

/// `value` is in `1..=max`.
pub fn within(name: &str, value: usize, max: usize) -> Result<(), ModelError> {
    if value == 0 {
        return Err(ModelError::Config(format!(
            "{name} must be at least 1, got 0"
        )));
    }
    if value > max {
        return Err(ModelError::Config(format!(
            "{name} is {value}; at most {max} is accepted"
        )));
    }
    Ok(())
}

/// A width: `1..=MAX_WIDTH`.
pub fn width(name: &str, value: usize) -> Result<(), ModelError> {
    within(name, value, MAX_WIDTH)
}

/// A count: `1..=MAX_COUNT`.
pub fn count(name: &str, value: usize) -> Result<(), ModelError> {
    within(name, value, MAX_COUNT)
}

/// A number of positions: `1..=MAX_POSITIONS`.
pub fn positions(name: &str, value: usize) -> Result<(), ModelError> {
    within(name, value, MAX_POSITIONS)
}

/// A vocabulary size: `1..=MAX_VOCAB`.
pub fn vocab(name: &str, value: usize) -> Result<(), ModelError> {
    within(name, value, MAX_VOCAB)
}

/// `heads` (checked first) divides `width`, as attention splits it.
pub fn heads_divide(
    heads_name: &str,
    heads: usize,
    width_name: &str,
    width_value: usize,
) -> Result<(), ModelError> {
    count(heads_name, heads)?;
    width(width_name, width_value)?;
    if !width_value.is_multiple_of(heads) {
        return Err(ModelError::Config(format!(
            "{width_name} ({width_value}) must be a multiple of {heads_name} ({heads})"
        )));
    }
    Ok(())
}

/// The sizes of a transformer stack under transformers' usual key names,
/// each prefixed with `prefix` (`""`, `"text_config."`, ...) in errors.
#[derive(Debug, Clone, Copy)]
pub struct Stack<'a> {
    /// Where the keys live in `config.json`.
    pub prefix: &'a str,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_attention_heads` (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `layer_norm_eps`.
    pub layer_norm_eps: f64,
}

impl Stack<'_> {
    /// Checks every size of the stack.
    pub fn check(&self) -> Result<(), ModelError> {
        let key = |name: &str| format!("{}{name}", self.prefix);
        heads_divide(
            &key("num_attention_heads"),
            self.num_attention_heads,
            &key("hidden_size"),
            self.hidden_size,
        )?;
        count(&key("num_hidden_layers"), self.num_hidden_layers)?;
        width(&key("intermediate_size"), self.intermediate_size)?;
        positive(&key("layer_norm_eps"), self.layer_norm_eps)
    }

    /// Checks the stack as a text tower: also `vocab_size` and
    /// `max_position_embeddings`.
    pub fn check_text(
        &self,
        vocab_size: usize,
        max_position_embeddings: usize,
    ) -> Result<(), ModelError> {
        self.check()?;
        vocab(&format!("{}vocab_size", self.prefix), vocab_size)?;
        positions(
            &format!("{}max_position_embeddings", self.prefix),
            max_position_embeddings,
        )
    }

    /// Checks the stack as a vision tower cutting square images into
    /// patches: also `num_channels`, `patch_size` and `image_size` (at least
    /// one patch).
    pub fn check_vision(
        &self,
        num_channels: usize,
        patch_size: usize,
        image_size: usize,
    ) -> Result<(), ModelError> {
        self.check()?;
        let key = |name: &str| format!("{}{name}", self.prefix);
        count(&key("num_channels"), num_channels)?;
        within(&key("patch_size"), patch_size, 4096)?;
        within(&key("image_size"), image_size, 16384)?;
        if image_size < patch_size {
            return Err(ModelError::Config(format!(
                "{} ({image_size}) is smaller than patch_size ({patch_size})",
                key("image_size")
            )));
        }
        Ok(())
    }
}

/// A finite number above zero (an epsilon, a theta, a ratio).
pub fn positive(name: &str, value: f64) -> Result<(), ModelError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ModelError::Config(format!(
            "{name} must be a positive number, got {value}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_the_value() {
        let err = |r: Result<(), ModelError>| r.unwrap_err().to_string();
        assert_eq!(err(count("n_head", 0)), "n_head must be at least 1, got 0");
        assert!(err(width("n_embd", usize::MAX)).contains("at most"));
        assert_eq!(
            err(heads_divide("n_head", 5, "n_embd", 32)),
            "n_embd (32) must be a multiple of n_head (5)"
        );
        assert!(err(positive("layer_norm_eps", f64::NAN)).contains("positive"));
        assert!(heads_divide("n_head", 4, "n_embd", 32).is_ok());
    }
}
