//! An encoder-decoder model as optimum's seq2seq ONNX export
//! (`text2text-generation-with-past` for T5,
//! `automatic-speech-recognition-with-past` for Whisper) on ONNX Runtime:
//! `encoder_model.onnx` runs once over the input (token ids, or log-mel
//! features); `decoder_model.onnx` takes the first decoder tokens (T5's
//! start token, Whisper's forced prefix) with the encoder's hidden states
//! and returns the whole cache
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

use crate::load::onnx_graph::{graph_set, no_graphs};
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{
    BackendError, BackendKind, OrtExecutor, OrtInput, OrtSession, OrtValue,
};
use ipfs_accelerate_loader::{Loader, ModelRef, ResolvedFile};
use ipfs_accelerate_patches::kv_cache::{self, CacheIo, CacheLayout};

/// The graph files of the export, relative to the model.
pub(crate) const ENCODER_GRAPH: &str = "onnx/encoder_model.onnx";
/// The decoder's first step (no past).
pub(crate) const DECODER_GRAPH: &str = "onnx/decoder_model.onnx";
/// The decoder's later steps (with past).
pub(crate) const DECODER_WITH_PAST_GRAPH: &str = "onnx/decoder_with_past_model.onnx";
/// The three, in the order [`OnnxSeq2Seq::new`] takes their sessions.
pub(crate) const SEQ2SEQ_GRAPHS: [&str; 3] =
    [ENCODER_GRAPH, DECODER_GRAPH, DECODER_WITH_PAST_GRAPH];

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

/// T5, Whisper (or another optimum seq2seq export) on three ONNX Runtime
/// sessions.
#[derive(Debug)]
pub(crate) struct OnnxSeq2Seq {
    encoder: OrtSession,
    decoder: OrtSession,
    decoder_with_past: OrtSession,
    layers: usize,
    layout: CacheLayout,
    encoded: Option<Encoded>,
    /// Per layer, one tensor per layout component; empty before the first
    /// decoder step.
    cache: Vec<Vec<Cached>>,
    /// Whether the decoders take `encoder_attention_mask` (T5's do,
    /// Whisper's do not).
    encoder_mask: bool,
}

impl OnnxSeq2Seq {
    /// Checks the three graphs' inputs and outputs; the encoder must take
    /// `encoder_inputs`.
    pub(crate) fn new(
        encoder: OrtSession,
        decoder: OrtSession,
        decoder_with_past: OrtSession,
        encoder_inputs: &[&str],
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
        for name in encoder_inputs {
            need_input(&encoder, ENCODER_GRAPH, name)?;
        }
        if !has_output(&encoder, "last_hidden_state") {
            return Err(unsupported(format!(
                "{ENCODER_GRAPH} has no output 'last_hidden_state'"
            )));
        }
        for name in ["input_ids", "encoder_hidden_states"] {
            need_input(&decoder, DECODER_GRAPH, name)?;
        }
        need_input(&decoder_with_past, DECODER_WITH_PAST_GRAPH, "input_ids")?;
        let encoder_mask = decoder.input("encoder_attention_mask").is_some();
        if encoder_mask {
            need_input(
                &decoder_with_past,
                DECODER_WITH_PAST_GRAPH,
                "encoder_attention_mask",
            )?;
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
            encoder_mask,
        })
    }

    /// Runs the encoder over `ids` (one sequence, T5) and forgets the
    /// cache.
    pub(crate) fn encode(&mut self, ids: &[u32]) -> Result<(), SkillError> {
        let n = ids.len();
        self.encode_inputs(vec![
            ("input_ids".to_owned(), OrtInput::token_ids(ids)),
            ("attention_mask".to_owned(), OrtInput::ones(n)),
        ])
    }

    /// Runs the encoder on `inputs` (Whisper: `input_features`), keeps its
    /// hidden states `[1, positions, d]` for the decoder ([`Self::encoded`])
    /// and forgets the cache.
    pub(crate) fn encode_inputs(
        &mut self,
        inputs: Vec<(String, OrtInput)>,
    ) -> Result<(), SkillError> {
        self.reset();
        let outputs = self.encoder.run(inputs)?;
        let (hidden_shape, hidden) = outputs.f32("last_hidden_state")?;
        let len = hidden_shape.get(1).copied().unwrap_or(0);
        self.encoded = Some(Encoded {
            hidden_shape,
            hidden,
            len,
        });
        Ok(())
    }

    /// The encoder output the decoder attends to: shape and values.
    pub(crate) fn encoded(&self) -> Option<(&[usize], &[f32])> {
        self.encoded
            .as_ref()
            .map(|e| (e.hidden_shape.as_slice(), e.hidden.as_slice()))
    }

    /// Sets the encoder output `[1, positions, d]` the next first step
    /// attends to, and forgets the cache.
    pub(crate) fn set_encoded(&mut self, hidden_shape: Vec<usize>, hidden: Vec<f32>) {
        self.cache.clear();
        let len = hidden_shape.get(1).copied().unwrap_or(0);
        self.encoded = Some(Encoded {
            hidden_shape,
            hidden,
            len,
        });
    }

    /// Feeds one decoder token; see [`OnnxSeq2Seq::decode`].
    pub(crate) fn decode_step(&mut self, token: u32) -> Result<Tensor, SkillError> {
        self.decode(&[token])
    }

    /// Feeds decoder tokens: the first call after the encoder (or a reset)
    /// runs `decoder_model.onnx` on them, later calls run the with-past
    /// graph on them with the cache. Returns the logits after the last,
    /// f32 `[vocab]`. A failed step forgets the cache (its tensors were
    /// handed to the failed run), so the next call starts a prefix again.
    pub(crate) fn decode(&mut self, tokens: &[u32]) -> Result<Tensor, SkillError> {
        let result = self.step(tokens);
        if result.is_err() {
            self.cache.clear();
        }
        result
    }

    /// Whether the next [`Self::decode`] is a first step.
    pub(crate) fn at_first_step(&self) -> bool {
        self.cache.is_empty()
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Tensor, SkillError> {
        let kind = self.encoder.kind();
        let Some(encoded) = &self.encoded else {
            return Err(SkillError::Backend(BackendError::Run {
                kind,
                detail: "decoder step before the encoder ran".to_owned(),
            }));
        };
        let mut inputs = vec![("input_ids".to_owned(), OrtInput::token_ids(tokens))];
        if self.encoder_mask {
            inputs.push((
                "encoder_attention_mask".to_owned(),
                OrtInput::ones(encoded.len),
            ));
        }
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
    pub(crate) fn reset(&mut self) {
        self.encoded = None;
        self.cache.clear();
    }
}

/// The model's three graphs when an ONNX backend may run them (its own,
/// split from its merged decoder, or exported on first use): [`graph_set`]
/// of [`SEQ2SEQ_GRAPHS`].
pub(crate) fn seq2seq_graphs(
    loader: &Loader,
    model: &ModelRef,
    backend: BackendKind,
    read: &mut Vec<ResolvedFile>,
) -> Result<Option<Vec<ResolvedFile>>, SkillError> {
    graph_set(loader, model, backend, &SEQ2SEQ_GRAPHS, read)
}

/// Sessions on `graphs` (from [`seq2seq_graphs`]) on `executor`, the
/// encoder taking `encoder_inputs`.
pub(crate) fn open_seq2seq(
    executor: &OrtExecutor,
    graphs: Option<&[ResolvedFile]>,
    encoder_inputs: &[&str],
) -> Result<OnnxSeq2Seq, SkillError> {
    let Some([encoder, decoder, with_past]) = graphs else {
        return Err(no_graphs(executor.kind(), &SEQ2SEQ_GRAPHS));
    };
    OnnxSeq2Seq::new(
        executor.session(&encoder.path)?,
        executor.session(&decoder.path)?,
        executor.session(&with_past.path)?,
        encoder_inputs,
    )
}

/// A cache that does not fit its layout: the graph is not what it claimed.
fn cache_error(e: ipfs_accelerate_patches::PatchError) -> SkillError {
    SkillError::InvalidInput(format!("the ONNX graph's KV cache: {e}"))
}
