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
//!
//! Our Whisper export's encoder also returns the cross-attention cache
//! (`present.{i}.encoder.*`). On ONNX Runtime's CPU provider the first
//! step then runs on the with-past graph too, with an empty self-attention
//! cache, and `decoder_model.onnx` (a second copy of the decoder's
//! weights, a third of the process's memory) is not opened: only if a
//! first step must attend to hidden states this encoder did not just
//! return. OpenVINO keeps the three sessions (its handling of the empty
//! cache is untested).

use crate::load::onnx_graph::{graph_set, no_graphs};
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::{
    BackendError, BackendKind, OrtExecutor, OrtInput, OrtSession, OrtValue,
};
use ipfs_accelerate_loader::{Loader, ModelRef, ResolvedFile};
use ipfs_accelerate_patches::kv_cache::{self, CacheIo, CacheLayout};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// A tensor fed at every step: shape and row-major values (shared with
    /// the encoder's cross-attention cache, when it came from there).
    Copy(Vec<usize>, Arc<Vec<f32>>),
}

impl Cached {
    /// The input for the next step; a `Value` is moved out.
    fn feed(&mut self) -> OrtInput {
        match std::mem::replace(self, Self::Copy(Vec::new(), Arc::default())) {
            Self::Value(value) => OrtInput::Value(value),
            Self::Copy(shape, data) => {
                let input = OrtInput::F32 {
                    shape: shape.clone(),
                    data: data.to_vec(),
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
    /// Shared with the encoder's cross-attention cache record, when any.
    hidden: Arc<Vec<f32>>,
    len: usize,
}

/// The cross-attention cache the encoder returned, with the hidden states
/// it goes with. Kept across [`OnnxSeq2Seq::reset`]: Whisper resets between
/// detecting the language and decoding the prefix over the same audio.
#[derive(Debug)]
struct EncoderCross {
    hidden_shape: Vec<usize>,
    hidden: Arc<Vec<f32>>,
    /// `present.{i}.encoder.*` name, shape and values.
    parts: Vec<(String, Vec<usize>, Arc<Vec<f32>>)>,
}

/// The decoder's first-step graph: open, or not opened (yet) because the
/// encoder returns the cross-attention cache.
#[derive(Debug)]
pub(crate) enum FirstStep {
    /// A session on `decoder_model.onnx`.
    Open(OrtSession),
    /// Where to open it should a first step need it.
    Closed {
        executor: OrtExecutor,
        graph: PathBuf,
    },
}

/// T5, Whisper (or another optimum seq2seq export) on ONNX Runtime
/// sessions.
#[derive(Debug)]
pub(crate) struct OnnxSeq2Seq {
    encoder: OrtSession,
    decoder: FirstStep,
    decoder_with_past: OrtSession,
    layers: usize,
    layout: CacheLayout,
    encoded: Option<Encoded>,
    /// The cache names the encoder returns (empty where it returns none).
    encoder_cross_names: Vec<String>,
    /// What the encoder last returned under those names.
    cross: Option<EncoderCross>,
    /// Per layer, one tensor per layout component; empty before the first
    /// decoder step.
    cache: Vec<Vec<Cached>>,
    /// Whether the decoders take `encoder_attention_mask` (T5's do,
    /// Whisper's do not).
    encoder_mask: bool,
}

impl OnnxSeq2Seq {
    /// Checks the graphs' inputs and outputs; the encoder must take
    /// `encoder_inputs`. A [`FirstStep::Closed`] graph is opened here unless
    /// the encoder returns the whole cross-attention cache.
    pub(crate) fn new(
        encoder: OrtSession,
        decoder: FirstStep,
        decoder_with_past: OrtSession,
        encoder_inputs: &[&str],
    ) -> Result<Self, SkillError> {
        let kind = encoder.kind();
        let unsupported =
            |why: String| SkillError::Backend(BackendError::Unsupported { kind, why });
        for name in encoder_inputs {
            need_input(&encoder, ENCODER_GRAPH, name)?;
        }
        if !has_output(&encoder, "last_hidden_state") {
            return Err(unsupported(format!(
                "{ENCODER_GRAPH} has no output 'last_hidden_state'"
            )));
        }
        need_input(&decoder_with_past, DECODER_WITH_PAST_GRAPH, "input_ids")?;
        if !has_output(&decoder_with_past, "logits") {
            return Err(unsupported(format!(
                "{DECODER_WITH_PAST_GRAPH} has no output 'logits'"
            )));
        }
        let encoder_mask = decoder_with_past.input("encoder_attention_mask").is_some();
        // A layout someone unregistered falls back to transformers' own.
        let layout = kv_cache::global()
            .read()
            .ok()
            .and_then(|r| r.get("EncoderDecoderCache").cloned())
            .unwrap_or_else(CacheLayout::encoder_decoder);
        let first = layout.components().first().cloned().unwrap_or_default();
        let past = CacheIo::Past.prefix();
        let layers = (0..)
            .take_while(|i| {
                decoder_with_past
                    .input(&format!("{past}.{i}.{first}"))
                    .is_some()
            })
            .count();
        if layers == 0 {
            return Err(unsupported(format!(
                "{DECODER_WITH_PAST_GRAPH} takes no {past}.0.{first} (export it with past, \
                 task text2text-generation-with-past)"
            )));
        }
        // The later steps must take every part of the cache.
        for name in layout.names(CacheIo::Past, layers) {
            need_input(&decoder_with_past, DECODER_WITH_PAST_GRAPH, &name)?;
        }
        // The parts the with-past graph does not return (cross-attention)
        // come from the first step, or from the encoder where it returns
        // them all.
        let fixed: Vec<String> = layout
            .names(CacheIo::Present, layers)
            .into_iter()
            .filter(|name| !has_output(&decoder_with_past, name))
            .collect();
        let encoder_cross = !fixed.is_empty() && fixed.iter().all(|n| has_output(&encoder, n));
        let decoder = match decoder {
            FirstStep::Closed { executor, graph } if !encoder_cross => {
                FirstStep::Open(executor.session(&graph)?)
            }
            other => other,
        };
        // Only a first step left closed runs on the with-past graph.
        let encoder_cross_names = match &decoder {
            FirstStep::Open(session) => {
                check_first_step(session, &layout, layers, encoder_mask)?;
                Vec::new()
            }
            FirstStep::Closed { .. } => fixed,
        };
        Ok(Self {
            encoder,
            decoder,
            decoder_with_past,
            layers,
            layout,
            encoded: None,
            encoder_cross_names,
            cross: None,
            cache: Vec::new(),
            encoder_mask,
        })
    }

    /// The first-step session, opened now if it was left closed.
    fn first_step_session(&mut self) -> Result<&OrtSession, SkillError> {
        if let FirstStep::Closed { executor, graph } = &self.decoder {
            let session = executor.session(graph)?;
            check_first_step(&session, &self.layout, self.layers, self.encoder_mask)?;
            tracing::debug!(graph = %graph.display(), "first-step decoder opened on demand");
            self.decoder = FirstStep::Open(session);
        }
        match &self.decoder {
            FirstStep::Open(session) => Ok(session),
            FirstStep::Closed { .. } => unreachable!("opened above"),
        }
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
        self.cross = None;
        let outputs = self.encoder.run(inputs)?;
        let (hidden_shape, hidden) = outputs.f32("last_hidden_state")?;
        let hidden = Arc::new(hidden);
        let len = hidden_shape.get(1).copied().unwrap_or(0);
        if !self.encoder_cross_names.is_empty() {
            let parts = self
                .encoder_cross_names
                .iter()
                .map(|name| {
                    let (shape, data) = outputs.f32(name)?;
                    Ok((name.clone(), shape, Arc::new(data)))
                })
                .collect::<Result<Vec<_>, SkillError>>()?;
            self.cross = Some(EncoderCross {
                hidden_shape: hidden_shape.clone(),
                hidden: Arc::clone(&hidden),
                parts,
            });
        }
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
            hidden: Arc::new(hidden),
            len,
        });
    }

    /// Feeds one decoder token; see [`OnnxSeq2Seq::decode`].
    pub(crate) fn decode_step(&mut self, token: u32) -> Result<Tensor, SkillError> {
        self.decode(&[token])
    }

    /// Feeds decoder tokens: the first call after the encoder (or a reset)
    /// runs `decoder_model.onnx` on them (or the with-past graph from the
    /// encoder's cross-attention cache), later calls run the with-past
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
        if self.cache.is_empty() {
            // The encoder's cross-attention cache, if it is this input's:
            // then the with-past graph takes the first step from an empty
            // self-attention cache.
            let cross = self
                .cross
                .as_ref()
                .filter(|c| c.hidden_shape == encoded.hidden_shape && c.hidden == encoded.hidden);
            if let Some(cross) = cross {
                self.cache = first_cache(&self.layout, self.layers, cross)?;
            }
        }
        let first = self.cache.is_empty();
        let session = if first {
            inputs.push((
                "encoder_hidden_states".to_owned(),
                OrtInput::F32 {
                    shape: encoded.hidden_shape.clone(),
                    data: encoded.hidden.to_vec(),
                },
            ));
            self.first_step_session()?
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
                    Cached::Copy(shape, Arc::new(data))
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

    /// Forgets the encoder output and the cache (not the encoder's
    /// cross-attention cache, used again only with the same hidden
    /// states: see [`Self::release_encoder`]).
    pub(crate) fn reset(&mut self) {
        self.encoded = None;
        self.cache.clear();
    }

    /// Forgets everything the last input left, the encoder's
    /// cross-attention cache too: at the end of a request, so that an idle
    /// model holds none of it.
    pub(crate) fn release_encoder(&mut self) {
        self.reset();
        self.cross = None;
    }
}

fn has_output(session: &OrtSession, name: &str) -> bool {
    session.outputs().iter().any(|o| o.name == name)
}

fn need_input(session: &OrtSession, file: &str, name: &str) -> Result<(), SkillError> {
    if session.input(name).is_none() {
        Err(SkillError::Backend(BackendError::Unsupported {
            kind: session.kind(),
            why: format!("{file} has no input '{name}'"),
        }))
    } else {
        Ok(())
    }
}

/// The first-step graph takes the ids and the encoder output, and returns
/// the logits and every part of the cache.
fn check_first_step(
    decoder: &OrtSession,
    layout: &CacheLayout,
    layers: usize,
    encoder_mask: bool,
) -> Result<(), SkillError> {
    let unsupported = |why: String| {
        SkillError::Backend(BackendError::Unsupported {
            kind: decoder.kind(),
            why,
        })
    };
    for name in ["input_ids", "encoder_hidden_states"] {
        need_input(decoder, DECODER_GRAPH, name)?;
    }
    // Both decoder graphs take the encoder's mask, or neither does.
    if decoder.input("encoder_attention_mask").is_some() != encoder_mask {
        return Err(unsupported(format!(
            "{DECODER_GRAPH} and {DECODER_WITH_PAST_GRAPH} disagree on taking \
             'encoder_attention_mask'"
        )));
    }
    for name in layout.names(CacheIo::Present, layers) {
        if !has_output(decoder, &name) {
            return Err(unsupported(format!(
                "{DECODER_GRAPH} has no output '{name}'"
            )));
        }
    }
    if !has_output(decoder, "logits") {
        return Err(unsupported(format!(
            "{DECODER_GRAPH} has no output 'logits'"
        )));
    }
    Ok(())
}

/// The cache before a first step on the with-past graph: the encoder's
/// cross-attention parts, and empty self-attention parts (no positions,
/// heads and head size as the cross-attention's).
fn first_cache(
    layout: &CacheLayout,
    layers: usize,
    cross: &EncoderCross,
) -> Result<Vec<Vec<Cached>>, SkillError> {
    let empty_shape = cross
        .parts
        .first()
        .map(|(_, shape, _)| {
            let mut shape = shape.clone();
            if let Some(len) = shape.get_mut(2) {
                *len = 0;
            }
            shape
        })
        .unwrap_or_default();
    let named = layout
        .names(CacheIo::Present, layers)
        .into_iter()
        .map(|name| {
            let value = match cross.parts.iter().find(|(n, _, _)| *n == name) {
                Some((_, shape, data)) => Cached::Copy(shape.clone(), Arc::clone(data)),
                None => Cached::Copy(empty_shape.clone(), Arc::default()),
            };
            (name, value)
        })
        .collect();
    layout
        .unflatten(CacheIo::Present, named)
        .map_err(cache_error)
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
    let decoder = if executor.kind() == BackendKind::Ort {
        FirstStep::Closed {
            executor: executor.clone(),
            graph: decoder.path.clone(),
        }
    } else {
        FirstStep::Open(executor.session(&decoder.path)?)
    };
    OnnxSeq2Seq::new(
        executor.session(&encoder.path)?,
        decoder,
        executor.session(&with_past.path)?,
        encoder_inputs,
    )
}

/// A cache that does not fit its layout: the graph is not what it claimed.
fn cache_error(e: ipfs_accelerate_patches::PatchError) -> SkillError {
    SkillError::InvalidInput(format!("the ONNX graph's KV cache: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::print_stdout)]
mod tests {
    use super::*;
    use crate::text_generation::decode_loop::argmax;
    use ipfs_accelerate_backends::{Backend, Executor, OnnxRuntimeCpu};
    use ipfs_accelerate_export::{export, ExportOptions};
    use std::path::Path;

    /// ONNX Runtime's CPU executor, or `None` after saying why (a failure
    /// under `IPFS_ACCELERATE_REQUIRE_ALL=1`).
    fn ort_or_skip(test: &str) -> Option<OrtExecutor> {
        let why = match OnnxRuntimeCpu.executor() {
            Ok(Executor::Ort(executor)) => return Some(executor),
            Ok(_) => "the ort backend gave no ONNX Runtime executor".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var("IPFS_ACCELERATE_REQUIRE_ALL").as_deref() != Ok("1"),
            "{test}: {why}"
        );
        println!("SKIPPED {test}: {why}");
        None
    }

    fn logits(model: &mut OnnxSeq2Seq, tokens: &[u32]) -> Vec<f32> {
        model.decode(tokens).unwrap().to_vec1::<f32>().unwrap()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}");
        let max = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(max <= 1e-5, "{what}: logits differ by {max:e}");
    }

    /// Our Whisper export's encoder returns the cross-attention cache: the
    /// first step on the with-past graph (first-step graph left closed)
    /// equals the three-graph path, step after step; hidden states the
    /// encoder did not return open the first-step graph on demand, and
    /// the encoder's cache serves again once they are its own again.
    #[test]
    fn whisper_first_step_on_the_with_past_graph_equals_the_first_step_graph() {
        let test = "whisper_first_step_on_the_with_past_graph_equals_the_first_step_graph";
        let Some(executor) = ort_or_skip(test) else {
            return;
        };
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/whisper");
        let home = tempfile::tempdir().unwrap();
        let loader = Loader::builder().cache_dir(home.path()).build().unwrap();
        let out = home.path().join("graphs");
        std::fs::create_dir_all(&out).unwrap();
        export(
            &loader,
            &ModelRef::LocalDir(fixture),
            &out,
            &ExportOptions::default(),
        )
        .unwrap();
        let [encoder, decoder, with_past] = SEQ2SEQ_GRAPHS.map(|g| {
            let file = Path::new(g).file_name().unwrap();
            out.join(file)
        });
        let open = |path: &Path| executor.session(path).unwrap();
        let inputs = &["input_features"];
        let mut three = OnnxSeq2Seq::new(
            open(&encoder),
            FirstStep::Open(open(&decoder)),
            open(&with_past),
            inputs,
        )
        .unwrap();
        let mut two = OnnxSeq2Seq::new(
            open(&encoder),
            FirstStep::Closed {
                executor: executor.clone(),
                graph: decoder.clone(),
            },
            open(&with_past),
            inputs,
        )
        .unwrap();
        assert!(matches!(two.decoder, FirstStep::Closed { .. }));
        assert!(three.encoder_cross_names.is_empty());

        // Any log-mel-sized input will do: both sides see the same.
        let (mels, frames) = (80, 3000);
        let features: Vec<f32> = (0..mels * frames)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        for model in [&mut three, &mut two] {
            let input = OrtInput::F32 {
                shape: vec![1, mels, frames],
                data: features.clone(),
            };
            model
                .encode_inputs(vec![("input_features".to_owned(), input)])
                .unwrap();
        }
        let prefix = [50257, 50362];
        let run = |three: &mut OnnxSeq2Seq, two: &mut OnnxSeq2Seq, what: &str| {
            let (a, b) = (logits(three, &prefix), logits(two, &prefix));
            assert_close(&format!("{what}, first step"), &a, &b);
            let mut token = argmax(&a).unwrap();
            for step in 1..=3 {
                let (a, b) = (logits(three, &[token]), logits(two, &[token]));
                assert_close(&format!("{what}, step {step}"), &a, &b);
                token = argmax(&a).unwrap();
            }
        };
        run(&mut three, &mut two, "the encoder's own output");
        assert!(matches!(two.decoder, FirstStep::Closed { .. }));

        // Hidden states from elsewhere: the first-step graph opens.
        let (shape, hidden) = three.encoded().unwrap();
        let (shape, hidden) = (shape.to_vec(), hidden.to_vec());
        let halved: Vec<f32> = hidden.iter().map(|v| v * 0.5).collect();
        for model in [&mut three, &mut two] {
            model.reset();
            model.set_encoded(shape.clone(), halved.clone());
        }
        run(&mut three, &mut two, "other hidden states");
        assert!(matches!(two.decoder, FirstStep::Open(_)));

        // The encoder's own again, after a reset: its cache serves.
        for model in [&mut three, &mut two] {
            model.reset();
            model.set_encoded(shape.clone(), hidden.clone());
        }
        run(&mut three, &mut two, "the encoder's output again");
        two.release_encoder();
        assert!(two.cross.is_none() && two.encoded().is_none());
    }
}
