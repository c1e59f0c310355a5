//! The one token loop shared by every generating skill (causal LMs,
//! encoder-decoders, speech and vision-language models): pick a token,
//! stream the new text, stop at EOS, a stop string, `max_new_tokens`, a
//! full context or a cancellation.

use super::options::{GenerateOptions, Generation, StopReason};
use super::stop_strings::StopMatcher;
use crate::SkillError;
use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use tokenizers::Tokenizer;

/// The most tokens one generation produces when the model itself sets no
/// limit (T5's relative positions, LLaMA with dynamic NTK scaling): without
/// it a huge `max_new_tokens` would decode, and grow the KV cache, forever.
/// transformers has no such cap; 4096 is above every default `max_length`
/// those models' generation configs use.
pub const UNBOUNDED_CONTEXT_CAP: usize = 4096;

/// What the loop needs besides the model.
#[derive(Debug)]
pub struct LoopInputs<'a> {
    /// Decodes the generated ids.
    pub tokenizer: &'a Tokenizer,
    /// Any of these ends generation (kept in `token_ids`, as transformers).
    pub eos_ids: &'a [u32],
    /// The request.
    pub options: &'a GenerateOptions,
    /// Tokens before the first generated one (the prompt), seen by the
    /// repetition penalty.
    pub context: Vec<u32>,
    /// How many tokens may still be generated before the context is full
    /// (a model without a position limit passes [`UNBOUNDED_CONTEXT_CAP`]).
    pub room: usize,
    /// The model's name, for error messages.
    pub model: &'a str,
}

/// Runs the loop. `first_logits` are the logits after the prompt; `step`
/// feeds one chosen token and returns the next logits; `on_text` receives
/// each new piece of text as soon as it is final.
pub fn run(
    inputs: LoopInputs<'_>,
    first_logits: Tensor,
    step: &mut dyn FnMut(u32) -> Result<Tensor, SkillError>,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation, SkillError> {
    let options = inputs.options;
    if options.max_new_tokens == 0 {
        return Err(SkillError::InvalidInput(
            "max_new_tokens must be at least 1".to_owned(),
        ));
    }
    let mut selector = TokenSelector::new(options)?;
    let prompt_tokens = inputs.context.len();
    let mut context = inputs.context;
    let last_logits = if options.return_logits {
        Some(
            first_logits
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?,
        )
    } else {
        None
    };
    let mut stops = StopMatcher::new(&options.stop);
    let mut generated: Vec<u32> = Vec::new();
    let mut logits = first_logits;
    let stop_reason = loop {
        let token = selector.select(&logits, &context)?;
        generated.push(token);
        context.push(token);
        let text = decode(inputs.tokenizer, &generated, inputs.model)?;
        if let Some(piece) = stops.advance(&text) {
            on_text(&piece);
        }
        if stops.matched() {
            break StopReason::StopString;
        }
        if inputs.eos_ids.contains(&token) {
            break StopReason::Eos;
        }
        if generated.len() >= options.max_new_tokens {
            break StopReason::MaxNewTokens;
        }
        if generated.len() >= inputs.room {
            break StopReason::ContextFull;
        }
        if options.cancel.is_cancelled() {
            break StopReason::Cancelled;
        }
        logits = step(token)?;
    };
    if let Some(rest) = stops.finish() {
        on_text(&rest);
    }
    Ok(Generation {
        token_ids: generated,
        text: stops.text().to_owned(),
        stop_reason,
        prompt_tokens,
        last_logits,
    })
}

fn decode(tokenizer: &Tokenizer, ids: &[u32], model: &str) -> Result<String, SkillError> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| SkillError::Tokenizer {
            model: model.to_owned(),
            source: e,
        })
}

/// Greedy argmax or seeded sampling, after the repetition penalty.
struct TokenSelector {
    penalty: f32,
    sampler: Option<LogitsProcessor>,
}

impl TokenSelector {
    fn new(options: &GenerateOptions) -> Result<Self, SkillError> {
        if !(options.repetition_penalty.is_finite() && options.repetition_penalty > 0.0) {
            return Err(SkillError::InvalidInput(format!(
                "repetition_penalty must be a positive number, got {}",
                options.repetition_penalty
            )));
        }
        let sampler = match &options.sampling {
            None => None,
            Some(params) => {
                let temperature = params.temperature;
                if !(temperature.is_finite() && temperature > 0.0) {
                    return Err(SkillError::InvalidInput(format!(
                        "temperature must be a positive number, got {temperature}"
                    )));
                }
                if let Some(p) = params.top_p {
                    if !(p > 0.0 && p <= 1.0) {
                        return Err(SkillError::InvalidInput(format!(
                            "top_p must be in (0, 1], got {p}"
                        )));
                    }
                }
                if params.top_k == Some(0) {
                    return Err(SkillError::InvalidInput(
                        "top_k must be at least 1".to_owned(),
                    ));
                }
                // top_p = 1 keeps everything, as in transformers.
                let top_p = params.top_p.filter(|p| *p < 1.0);
                let sampling = match (params.top_k, top_p) {
                    (None, None) => Sampling::All { temperature },
                    (Some(k), None) => Sampling::TopK { k, temperature },
                    (None, Some(p)) => Sampling::TopP { p, temperature },
                    (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
                };
                Some(LogitsProcessor::from_sampling(params.seed, sampling))
            }
        };
        Ok(Self {
            penalty: options.repetition_penalty,
            sampler,
        })
    }

    fn select(&mut self, logits: &Tensor, context: &[u32]) -> Result<u32, SkillError> {
        let mut logits = logits.to_dtype(candle_core::DType::F32)?;
        if self.penalty != 1.0 {
            logits =
                candle_transformers::utils::apply_repeat_penalty(&logits, self.penalty, context)?;
        }
        match &mut self.sampler {
            Some(sampler) => Ok(sampler.sample(&logits)?),
            None => argmax(&logits.to_vec1::<f32>()?),
        }
    }
}

/// The first index of the largest value, as `torch.argmax`; NaN logits are
/// an error rather than a silent pick.
pub(crate) fn argmax(values: &[f32]) -> Result<u32, SkillError> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return Err(SkillError::InvalidInput(
                "the model produced NaN logits".to_owned(),
            ));
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or_else(|| SkillError::InvalidInput("the model produced no logits".to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]).unwrap(), 1);
        assert!(argmax(&[1.0, f32::NAN]).is_err());
        assert!(argmax(&[]).is_err());
    }

    #[test]
    fn sampling_is_seeded() {
        let logits = Tensor::new(&[0.5f32, 0.1, 0.9, 0.3, 0.7], &candle_core::Device::Cpu).unwrap();
        let draw = |seed| {
            let options = GenerateOptions {
                sampling: Some(super::super::SamplingParams {
                    temperature: 1.5,
                    top_k: Some(4),
                    top_p: Some(0.95),
                    seed,
                }),
                ..GenerateOptions::default()
            };
            let mut s = TokenSelector::new(&options).unwrap();
            (0..32)
                .map(|_| s.select(&logits, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // top_k = 4 never draws the least likely token (index 1).
        assert!(!draw(7).contains(&1));
    }

    #[test]
    fn bad_sampling_values_are_refused() {
        for params in [
            super::super::SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            super::super::SamplingParams {
                top_p: Some(1.5),
                ..Default::default()
            },
            super::super::SamplingParams {
                top_k: Some(0),
                ..Default::default()
            },
        ] {
            let options = GenerateOptions {
                sampling: Some(params),
                ..GenerateOptions::default()
            };
            assert!(TokenSelector::new(&options).is_err());
        }
    }
}
