//! An encoder-decoder model as optimum's seq2seq ONNX export
//! (`text2text-generation-with-past`) on ONNX Runtime: `encoder_model.onnx`
//! runs once over the input; `decoder_model.onnx` takes the first decoder
//! token with the encoder's hidden states and returns the whole cache
//! (`present.{i}.decoder.*` self-attention, `present.{i}.encoder.*`
//! cross-attention); `decoder_with_past_model.onnx` then takes one token at
//! a time with that cache as `past_key_values.{i}.*` and returns the grown
//! self-attention part. The cache tensors are named by the
//! `EncoderDecoderCache` layout of the patches crate's KV-cache registry.
//!
//! Cache parts the with-past graph returns (self-attention) stay in ONNX
//! Runtime's memory and are fed back without a copy; the parts it does not
//! return (cross-attention, fixed for the whole generation) are kept as f32
//! copies, fed again at every step.

use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{BackendError, OrtInput, OrtSession, OrtValue};
use ipfs_accelerate_patches::kv_cache::{self, CacheIo, CacheLayout};

/// The graph files of the export, relative to the model.
pub(super) const ENCODER_GRAPH: &str = "onnx/encoder_model.onnx";
/// The decoder's first step (no past).
pub(super) const DECODER_GRAPH: &str = "onnx/decoder_model.onnx";
/// The decoder's later steps (with past).
pub(super) const DECODER_WITH_PAST_GRAPH: &str = "onnx/decoder_with_past_model.onnx";

/// One cache tensor between steps.
#[derive(Debug)]
enum Cached {
    /// An output of the last step, fed back as is (consumed by the next).
    Value(OrtValue),
    /// A tensor fed at every step: shape and row-major values.
    Copy(Vec<usize>, Vec<f32>),
}

impl Cached {
    /// The input for the next step; a `Value` is moved out.
    fn feed(&mut self) -> OrtInput {
        match std::mem::replace(self, Self::Copy(Vec::new(), Vec::new())) {
            Self::Value(value) => OrtInput::Value(value),
            Self::Copy(shape, data) => {
                let input = OrtInput::F32 {
                    shape: shape.clone(),
                    data: data.clone(),
                };
                *self = Self::Copy(shape, data);
                input
            }
        }
    }
}

/// The encoder's output for the current input.
#[derive(Debug)]
struct Encoded {
    hidden_shape: Vec<usize>,
    hidden: Vec<f32>,
    len: usize,
}

/// T5 (or another optimum seq2seq export) on three ONNX Runtime sessions.
#[derive(Debug)]
pub(super) struct OnnxT5 {
    encoder: OrtSession,
    decoder: OrtSession,
    decoder_with_past: OrtSession,
    layers: usize,
    layout: CacheLayout,
    encoded: Option<Encoded>,
    /// Per layer, one tensor per layout component; empty before the first
    /// decoder step.
    cache: Vec<Vec<Cached>>,
}

impl OnnxT5 {
    /// Checks the three graphs' inputs and outputs.
    pub(super) fn new(
        encoder: OrtSession,
        decoder: OrtSession,
        decoder_with_past: OrtSession,
    ) -> Result<Self, SkillError> {
        let kind = encoder.kind();
        let unsupported =
            |why: String| SkillError::Backend(BackendError::Unsupported { kind, why });
        let need_input = |session: &OrtSession, file: &str, name: &str| {
            if session.input(name).is_none() {
                Err(unsupported(format!("{file} has no input '{name}'")))
            } else {
                Ok(())
            }
        };
        let has_output =
            |session: &OrtSession, name: &str| session.outputs().iter().any(|o| o.name == name);
        for name in ["input_ids", "attention_mask"] {
            need_input(&encoder, ENCODER_GRAPH, name)?;
        }
        if !has_output(&encoder, "last_hidden_state") {
            return Err(unsupported(format!(
                "{ENCODER_GRAPH} has no output 'last_hidden_state'"
            )));
        }
        for name in [
            "input_ids",
            "encoder_attention_mask",
            "encoder_hidden_states",
        ] {
            need_input(&decoder, DECODER_GRAPH, name)?;
        }
        for name in ["input_ids", "encoder_attention_mask"] {
            need_input(&decoder_with_past, DECODER_WITH_PAST_GRAPH, name)?;
        }
        // A layout someone unregistered falls back to transformers' own.
        let layout = kv_cache::global()
            .read()
            .ok()
            .and_then(|r| r.get("EncoderDecoderCache").cloned())
            .unwrap_or_else(CacheLayout::encoder_decoder);
        let first = layout.components().first().cloned().unwrap_or_default();
        let layers = (0..)
            .take_while(|i| has_output(&decoder, &format!("present.{i}.{first}")))
            .count();
        if layers == 0 {
            return Err(unsupported(format!(
                "{DECODER_GRAPH} returns no present.0.{first} (export it with past, task \
                 text2text-generation-with-past)"
            )));
        }
        // The first step must return every part of the cache; the later
        // steps must take every part and return the logits.
        for name in layout.names(CacheIo::Present, layers) {
            if !has_output(&decoder, &name) {
                return Err(unsupported(format!(
                    "{DECODER_GRAPH} has no output '{name}'"
                )));
            }
        }
        for name in layout.names(CacheIo::Past, layers) {
            need_input(&decoder_with_past, DECODER_WITH_PAST_GRAPH, &name)?;
        }
        for (session, file) in [
            (&decoder, DECODER_GRAPH),
            (&decoder_with_past, DECODER_WITH_PAST_GRAPH),
        ] {
            if !has_output(session, "logits") {
                return Err(unsupported(format!("{file} has no output 'logits'")));
            }
        }
        Ok(Self {
            encoder,
            decoder,
            decoder_with_past,
            layers,
            layout,
            encoded: None,
            cache: Vec::new(),
        })
    }

    /// Runs the encoder over `ids` (one sequence) and forgets the cache.
    pub(super) fn encode(&mut self, ids: &[u32]) -> Result<(), SkillError> {
        self.reset();
        let n = ids.len();
        let outputs = self.encoder.run(vec![
            ("input_ids".to_owned(), OrtInput::token_ids(ids)),
            ("attention_mask".to_owned(), OrtInput::ones(n)),
        ])?;
        let (hidden_shape, hidden) = outputs.f32("last_hidden_state")?;
        self.encoded = Some(Encoded {
            hidden_shape,
            hidden,
            len: n,
        });
        Ok(())
    }

    /// Feeds one decoder token (the first with `decoder_model.onnx`, the
    /// rest with the cache); returns the next logits, f32 `[vocab]`.
    pub(super) fn decode_step(&mut self, token: u32) -> Result<Tensor, SkillError> {
        let kind = self.encoder.kind();
        let Some(encoded) = &self.encoded else {
            return Err(SkillError::Backend(BackendError::Run {
                kind,
                detail: "decoder step before the encoder ran".to_owned(),
            }));
        };
        let mut inputs = vec![
            ("input_ids".to_owned(), OrtInput::token_ids(&[token])),
            (
                "encoder_attention_mask".to_owned(),
                OrtInput::ones(encoded.len),
            ),
        ];
        let first = self.cache.is_empty();
        let session = if first {
            inputs.push((
                "encoder_hidden_states".to_owned(),
                OrtInput::F32 {
                    shape: encoded.hidden_shape.clone(),
                    data: encoded.hidden.clone(),
                },
            ));
            &self.decoder
        } else {
            let past: Vec<Vec<OrtInput>> = self
                .cache
                .iter_mut()
                .map(|layer| layer.iter_mut().map(Cached::feed).collect())
                .collect();
            inputs.extend(
                self.layout
                    .flatten(CacheIo::Past, past)
                    .map_err(cache_error)?,
            );
            &self.decoder_with_past
        };
        let mut outputs = session.run(inputs)?;
        let (shape, logits) = outputs.f32("logits")?;
        let vocab = shape.last().copied().unwrap_or(0);
        if vocab == 0 || logits.len() < vocab {
            return Err(SkillError::Backend(BackendError::Run {
                kind,
                detail: format!("logits have shape {shape:?}"),
            }));
        }
        let last = logits[logits.len() - vocab..].to_vec();
        let names = self.layout.names(CacheIo::Present, self.layers);
        if first {
            // What the with-past graph returns stays in ONNX Runtime; what
            // it does not (the cross-attention cache) is fed at every step.
            let mut present = Vec::with_capacity(names.len());
            for name in names {
                let returned_later = self
                    .decoder_with_past
                    .outputs()
                    .iter()
                    .any(|o| o.name == name);
                let value = if returned_later {
                    Cached::Value(outputs.take(&name)?)
                } else {
                    let (shape, data) = outputs.f32(&name)?;
                    Cached::Copy(shape, data)
                };
                present.push((name, value));
            }
            self.cache = self
                .layout
                .unflatten(CacheIo::Present, present)
                .map_err(cache_error)?;
        } else {
            let per_layer = self.layout.components().len();
            for (i, name) in names.iter().enumerate() {
                let slot = self
                    .cache
                    .get_mut(i / per_layer)
                    .and_then(|layer| layer.get_mut(i % per_layer));
                if let (Some(slot), Ok(value)) = (slot, outputs.take(name)) {
                    *slot = Cached::Value(value);
                }
            }
        }
        Ok(Tensor::from_vec(last, vocab, &Device::Cpu)?)
    }

    /// Forgets the encoder output and the cache.
    pub(super) fn reset(&mut self) {
        self.encoded = None;
        self.cache.clear();
    }
}

/// A cache that does not fit its layout: the graph is not what it claimed.
fn cache_error(e: ipfs_accelerate_patches::PatchError) -> SkillError {
    SkillError::InvalidInput(format!("the ONNX graph's KV cache: {e}"))
}
