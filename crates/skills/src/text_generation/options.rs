//! What a caller asks of one generation.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Token selection when sampling (`None` in [`GenerateOptions::sampling`]
/// means greedy).
///
/// Applied in `transformers`' order: repetition penalty, temperature,
/// top-k, top-p, then a draw from the seeded generator.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Divides the logits; must be > 0.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p`.
    pub top_p: Option<f64>,
    /// Seed of the generator: the same seed gives the same tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// New tokens at most (must be ≥ 1).
    pub max_new_tokens: usize,
    /// `None`: greedy (argmax of the raw logits, as `do_sample=False`).
    pub sampling: Option<SamplingParams>,
    /// `transformers`' `repetition_penalty` (1.0 = off); applies to greedy
    /// decoding too, as there.
    pub repetition_penalty: f32,
    /// Stop as soon as the text holds one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Also return the logits of the last prompt position (the first step).
    pub return_logits: bool,
    /// Set from another thread to stop the generation before its next
    /// token (a client that went away, a server shutting down).
    pub cancel: Cancellation,
}

/// A flag a running generation checks before every step: generation runs on
/// a blocking thread that nothing else can interrupt, so whoever waits for
/// the answer needs a way to say it no longer will.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<AtomicBool>);

impl Cancellation {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the generation to stop before its next token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once [`Self::cancel`] was called on this flag or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Options compare equal whatever their flags: a flag is a channel to the
/// running generation, not part of what was asked.
impl PartialEq for Cancellation {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            sampling: None,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            return_logits: false,
            cancel: Cancellation::default(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// `max_new_tokens` were generated.
    MaxNewTokens,
    /// A stop string appeared in the text.
    StopString,
    /// The model's context is full (or, for a model without a position
    /// limit, the documented cap on generated tokens was reached).
    ContextFull,
    /// The caller cancelled it (see [`Cancellation`]).
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// Generated ids only (not the prompt), the EOS id included when produced.
    pub token_ids: Vec<u32>,
    /// Their decoding without special tokens, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Prompt length in tokens (special tokens included).
    pub prompt_tokens: usize,
    /// Logits at the last prompt position, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_logits: Option<Vec<f32>>,
}
