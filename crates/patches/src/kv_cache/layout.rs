//! How one cache type names its tensors.

use crate::PatchError;
use std::collections::HashMap;

/// Which side of a graph the names are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheIo {
    /// Inputs: the cache so far, `past_key_values.{i}.*`.
    Past,
    /// Outputs: the cache after this step, `present.{i}.*`.
    Present,
}

impl CacheIo {
    /// The name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Past => "past_key_values",
            Self::Present => "present",
        }
    }
}

/// A cache type: its name and the tensors each layer holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLayout {
    name: String,
    components: Vec<String>,
}

impl CacheLayout {
    /// A layout whose layers hold `components` (e.g. `["key", "value"]`).
    pub fn new(name: impl Into<String>, components: &[&str]) -> Self {
        Self {
            name: name.into(),
            components: components.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// transformers' `DynamicCache` (decoder-only models): key, value.
    pub fn dynamic() -> Self {
        Self::new("DynamicCache", &["key", "value"])
    }

    /// transformers' `EncoderDecoderCache` (T5, Whisper, ...): self-attention
    /// key/value then cross-attention key/value, named as optimum exports
    /// name them (`past_key_values.{i}.decoder.key`, `...encoder.value`).
    pub fn encoder_decoder() -> Self {
        Self::new(
            "EncoderDecoderCache",
            &[
                "decoder.key",
                "decoder.value",
                "encoder.key",
                "encoder.value",
            ],
        )
    }

    /// The cache type's name (the registry key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What each layer holds, in order.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// `{prefix}.{layer}.{component}` for every layer and component, in order.
    pub fn names(&self, io: CacheIo, layers: usize) -> Vec<String> {
        (0..layers)
            .flat_map(|i| {
                self.components
                    .iter()
                    .map(move |c| format!("{}.{i}.{c}", io.prefix()))
            })
            .collect()
    }

    fn error(&self, reason: String) -> PatchError {
        PatchError::Cache {
            cache: self.name.clone(),
            reason,
        }
    }

    /// Per-layer tensors -> named tensors, in [`CacheLayout::names`] order.
    /// Each layer must hold one tensor per component.
    pub fn flatten<T>(
        &self,
        io: CacheIo,
        layers: Vec<Vec<T>>,
    ) -> Result<Vec<(String, T)>, PatchError> {
        let mut out = Vec::with_capacity(layers.len() * self.components.len());
        for (i, layer) in layers.into_iter().enumerate() {
            if layer.len() != self.components.len() {
                return Err(self.error(format!(
                    "layer {i} holds {} tensors, expected {} ({})",
                    layer.len(),
                    self.components.len(),
                    self.components.join(", ")
                )));
            }
            for (component, tensor) in self.components.iter().zip(layer) {
                out.push((format!("{}.{i}.{component}", io.prefix()), tensor));
            }
        }
        Ok(out)
    }

    /// Named tensors -> per-layer tensors. The names must be exactly those of
    /// some number of layers (none missing, none extra); their order does
    /// not matter.
    pub fn unflatten<T>(
        &self,
        io: CacheIo,
        named: Vec<(String, T)>,
    ) -> Result<Vec<Vec<T>>, PatchError> {
        let per_layer = self.components.len();
        if per_layer == 0 || !named.len().is_multiple_of(per_layer) {
            return Err(self.error(format!(
                "{} tensors is not a whole number of layers of {per_layer}",
                named.len()
            )));
        }
        let layers = named.len() / per_layer;
        let mut slots: HashMap<String, Option<T>> = HashMap::new();
        for (name, tensor) in named {
            if slots.insert(name.clone(), Some(tensor)).is_some() {
                return Err(self.error(format!("{name} is given twice")));
            }
        }
        let mut out = Vec::with_capacity(layers);
        for i in 0..layers {
            let mut layer = Vec::with_capacity(per_layer);
            for component in &self.components {
                let name = format!("{}.{i}.{component}", io.prefix());
                let tensor = slots
                    .get_mut(&name)
                    .and_then(Option::take)
                    .ok_or_else(|| self.error(format!("{name} is missing")))?;
                layer.push(tensor);
            }
            out.push(layer);
        }
        Ok(out)
    }

    /// (key, value) pairs -> named tensors, for two-component layouts.
    pub fn flatten_pairs<T>(
        &self,
        io: CacheIo,
        pairs: Vec<(T, T)>,
    ) -> Result<Vec<(String, T)>, PatchError> {
        self.flatten(io, pairs.into_iter().map(|(k, v)| vec![k, v]).collect())
    }

    /// Named tensors -> (key, value) pairs, for two-component layouts.
    pub fn unflatten_pairs<T>(
        &self,
        io: CacheIo,
        named: Vec<(String, T)>,
    ) -> Result<Vec<(T, T)>, PatchError> {
        if self.components.len() != 2 {
            return Err(self.error(format!(
                "layers hold {} tensors, not a (key, value) pair",
                self.components.len()
            )));
        }
        self.unflatten(io, named)?
            .into_iter()
            .map(|layer| {
                let mut it = layer.into_iter();
                match (it.next(), it.next()) {
                    (Some(k), Some(v)) => Ok((k, v)),
                    _ => Err(self.error("a layer lost its pair".to_owned())),
                }
            })
            .collect()
    }
}
