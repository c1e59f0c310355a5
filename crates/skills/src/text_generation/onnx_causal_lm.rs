//! A decoder-only model as an ONNX graph (optimum's
//! `text-generation-with-past` export: `input_ids`, `attention_mask`,
//! optional `position_ids`, `past_key_values.{i}.key/value` in;
//! `logits`, `present.{i}.key/value` out) on ONNX Runtime. The first call
//! feeds the prompt with an empty cache, each later call one token with the
//! previous call's `present` values as `past` (kept in ONNX Runtime's
//! memory, not copied), so the shared decode loop drives it like the candle
//! models. The cache tensors are named by the `DynamicCache` layout of the
//! patches crate's KV-cache registry, the one place those names live.

use super::CausalLm;
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession, OrtValue};
use ipfs_accelerate_patches::kv_cache::{self, CacheIo, CacheLayout};
use serde_json::Value;

/// One sequence on an ONNX Runtime session, with its KV cache.
/// The embeddings input of a decoder whose embeddings are made outside it.
const EMBEDS: &str = "inputs_embeds";

#[derive(Debug)]
pub(crate) struct OnnxCausalLm {
    session: OrtSession,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    position_ids: bool,
    /// The graph takes `inputs_embeds` instead of `input_ids`.
    embeds: bool,
    /// How the cache tensors are named (`DynamicCache`: key, value).
    layout: CacheLayout,
    /// `(key, value)` per layer: the last call's `present` tensors.
    past: Vec<(OrtValue, OrtValue)>,
    past_len: usize,
    context_length: Option<usize>,
}

impl OnnxCausalLm {
    /// Checks the graph's layout; `config` is the model's `config.json`.
    pub(crate) fn new(session: OrtSession, config: &Value) -> Result<Self, SkillError> {
        let unsupported = |why: String| {
            SkillError::Backend(BackendError::Unsupported {
                kind: session.kind(),
                why,
            })
        };
        // A decoder takes ids, or (LLaVA's language model) embeddings.
        let embeds = session.input("input_ids").is_none() && session.input(EMBEDS).is_some();
        let first_input = if embeds { EMBEDS } else { "input_ids" };
        for input in [first_input, "attention_mask"] {
            if session.input(input).is_none() {
                return Err(unsupported(format!(
                    "the ONNX graph has no input '{input}'"
                )));
            }
        }
        let layers = (0..)
            .take_while(|i| session.input(&format!("past_key_values.{i}.key")).is_some())
            .count();
        let Some(first) = session.input("past_key_values.0.key") else {
            return Err(unsupported(
                "the ONNX graph takes no past_key_values (export it with past, \
                 task text-generation-with-past)"
                    .to_owned(),
            ));
        };
        // [batch, kv_heads, past_len, head_dim]: heads and size are fixed.
        let (kv_heads, head_dim) = match first.shape.as_slice() {
            [_, heads, _, dim] if *heads > 0 && *dim > 0 => (*heads as usize, *dim as usize),
            other => {
                return Err(unsupported(format!(
                    "past_key_values.0.key has shape {other:?}, expected [batch, heads, past, head_dim]"
                )))
            }
        };
        if !session.outputs().iter().any(|o| o.name == "logits") {
            return Err(unsupported(
                "the ONNX graph has no output 'logits'".to_owned(),
            ));
        }
        // A layout someone unregistered falls back to transformers' own.
        let layout = kv_cache::global()
            .read()
            .ok()
            .and_then(|r| r.get("DynamicCache").cloned())
            .unwrap_or_else(CacheLayout::dynamic);
        Ok(Self {
            layout,
            embeds,
            position_ids: session.input("position_ids").is_some(),
            session,
            layers,
            kv_heads,
            head_dim,
            past: Vec::new(),
            past_len: 0,
            context_length: context_length(config),
        })
    }

    /// Whether the graph takes `inputs_embeds` instead of `input_ids`.
    pub(crate) fn takes_embeds(&self) -> bool {
        self.embeds
    }

    fn step(&mut self, ids: &[u32]) -> Result<Tensor, SkillError> {
        self.step_with(("input_ids", OrtInput::token_ids(ids)), ids.len())
    }

    /// One step on `embeds` `[1, n, hidden]` (a graph taking
    /// `inputs_embeds`); returns the last position's logits.
    pub(crate) fn step_embeds(&mut self, embeds: &Tensor) -> Result<Tensor, SkillError> {
        let shape = embeds.dims().to_vec();
        let n = shape.get(1).copied().unwrap_or(0);
        let data = embeds.flatten_all()?.to_vec1::<f32>()?;
        self.step_with((EMBEDS, OrtInput::F32 { shape, data }), n)
    }

    fn step_with(&mut self, first: (&str, OrtInput), n: usize) -> Result<Tensor, SkillError> {
        let total = self.past_len + n;
        let mut inputs = vec![
            (first.0.to_owned(), first.1),
            ("attention_mask".to_owned(), OrtInput::ones(total)),
        ];
        if self.position_ids {
            inputs.push((
                "position_ids".to_owned(),
                OrtInput::I64 {
                    shape: vec![1, n],
                    data: (self.past_len as i64..total as i64).collect(),
                },
            ));
        }
        let past: Vec<(OrtInput, OrtInput)> = if self.past.is_empty() {
            // The prompt: an empty cache, [1, heads, 0, head_dim].
            let empty = || OrtInput::F32 {
                shape: vec![1, self.kv_heads, 0, self.head_dim],
                data: Vec::new(),
            };
            (0..self.layers).map(|_| (empty(), empty())).collect()
        } else {
            std::mem::take(&mut self.past)
                .into_iter()
                .map(|(k, v)| (OrtInput::Value(k), OrtInput::Value(v)))
                .collect()
        };
        inputs.extend(
            self.layout
                .flatten_pairs(CacheIo::Past, past)
                .map_err(cache_error)?,
        );
        let mut outputs = self.session.run(inputs)?;
        let (shape, logits) = outputs.f32("logits")?;
        let vocab = shape.last().copied().unwrap_or(0);
        if vocab == 0 || logits.len() < vocab {
            return Err(SkillError::Backend(BackendError::Run {
                kind: self.session.kind(),
                detail: format!("logits have shape {shape:?}"),
            }));
        }
        let last = logits[logits.len() - vocab..].to_vec();
        let mut present = Vec::with_capacity(2 * self.layers);
        for name in self.layout.names(CacheIo::Present, self.layers) {
            let value = outputs.take(&name)?;
            present.push((name, value));
        }
        let present = self
            .layout
            .unflatten_pairs(CacheIo::Present, present)
            .map_err(cache_error)?;
        self.past = present;
        self.past_len = total;
        Ok(Tensor::from_vec(last, vocab, &Device::Cpu)?)
    }
}

impl CausalLm for OnnxCausalLm {
    fn forward(&mut self, ids: &[u32]) -> candle_core::Result<Tensor> {
        self.step(ids).map_err(candle_core::Error::wrap)
    }

    fn reset(&mut self) {
        self.past.clear();
        self.past_len = 0;
    }

    fn context_length(&self) -> Option<usize> {
        self.context_length
    }
}

/// Positions the model holds: GPT-2's `n_positions`, else
/// `max_position_embeddings`; unbounded with dynamic RoPE scaling (as the
/// candle LLaMA).
fn context_length(config: &Value) -> Option<usize> {
    let scaling = config.get("rope_scaling");
    let scaling_type = scaling
        .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
        .and_then(Value::as_str);
    if scaling_type == Some("dynamic") {
        return None;
    }
    ["n_positions", "max_position_embeddings"]
        .iter()
        .find_map(|key| config.get(*key).and_then(Value::as_u64))
        .map(|n| n as usize)
}

/// A cache that does not fit its layout: the graph is not what it claimed.
fn cache_error(e: ipfs_accelerate_patches::PatchError) -> SkillError {
    SkillError::InvalidInput(format!("the ONNX graph's KV cache: {e}"))
}
