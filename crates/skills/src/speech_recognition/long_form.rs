//! Whisper with timestamps, over any length of audio: the sequential
//! long-form algorithm of transformers' `WhisperForConditionalGeneration.
//! generate` (4.57), which OpenAI's reference implementation also follows.
//!
//! The recording's features are cut into 30 s windows starting at `seek`.
//! Each window is decoded greedily with the timestamp rules
//! (`WhisperTimeStampLogitsProcessor`). The tokens are split into segments
//! at each pair of consecutive timestamps. Then `seek` moves to the last
//! complete segment's end, or past the window when the decoding ended on a
//! single timestamp (nothing more was said) or had no pair at all. Audio
//! of at most one window with timestamps asked for runs the same loop over
//! its padded 30 s features, as transformers does.

use super::{Transcription, WhisperRunner};
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_media::preprocess::log_mel::LongFormFeatures;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Seconds per timestamp token (`<|0.02|>` is one step).
const TIME_PRECISION: f64 = 0.02;

/// A stretch of the recording and what was said in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedSegment {
    /// Its place among the segments, from 0.
    pub id: usize,
    /// The feature frame (10 ms each) where its window started.
    pub seek: usize,
    /// When it starts, in seconds.
    pub start: f64,
    /// When it ends, in seconds.
    pub end: f64,
    /// Its text (special tokens skipped).
    pub text: String,
    /// Its tokens, timestamps included, as transformers' `segments` give
    /// them.
    pub tokens: Vec<u32>,
}

/// Where a window's features come from.
pub(super) enum Frames<'a> {
    /// One window's features, already zero-padded to its width (audio of
    /// at most 30 s, as the feature extractor pads it).
    Padded { features: Vec<f32>, width: usize },
    /// A recording longer than one window.
    Long(LongFormFeatures<'a>),
}

impl Frames<'_> {
    /// Frames the loop walks through.
    fn total(&self) -> usize {
        match self {
            Self::Padded { width, .. } => *width,
            Self::Long(features) => features.frames(),
        }
    }

    /// Frames `start .. start + count`, zero-padded to `width` columns.
    fn window(&self, start: usize, count: usize, width: usize, mels: usize) -> Vec<f32> {
        match self {
            Self::Padded {
                features,
                width: have,
            } => {
                let mut out = vec![0f32; mels * width];
                let count = count.min(width).min(have.saturating_sub(start));
                for m in 0..mels {
                    let row = &features[m * have + start..m * have + start + count];
                    out[m * width..m * width + count].copy_from_slice(row);
                }
                out
            }
            Self::Long(features) => features.window(start, count, width),
        }
    }
}

/// The timestamp rules' settings, from the generation config.
#[derive(Debug, Clone)]
pub(super) struct TimestampRules {
    no_timestamps: u32,
    /// The first timestamp token, `<|0.00|>`.
    begin: u32,
    /// Tokens below this one are text (the processor's `eos_token_id`).
    text_end: u32,
    max_initial_index: Option<u32>,
    pad: Option<u32>,
}

impl TimestampRules {
    /// `None` when the generation config names no `<|notimestamps|>`, so
    /// the model has no timestamp tokens.
    pub(super) fn from_generation_config(generation: &Value, eos_ids: &[u32]) -> Option<Self> {
        let id = |key: &str| {
            generation
                .get(key)
                .and_then(Value::as_u64)
                .map(|v| v as u32)
        };
        let no_timestamps = id("no_timestamps_token_id")?;
        let text_end = eos_ids
            .first()
            .copied()
            .or_else(|| id("bos_token_id"))
            .unwrap_or(no_timestamps);
        Some(Self {
            no_timestamps,
            begin: no_timestamps + 1,
            text_end,
            max_initial_index: id("max_initial_timestamp_index"),
            pad: id("pad_token_id"),
        })
    }

    /// `WhisperTimeStampLogitsProcessor` on `logits` (already suppressed)
    /// after `generated` tokens of this window.
    fn apply(&self, generated: &[u32], logits: &mut [f32]) {
        let len = logits.len();
        let begin = (self.begin as usize).min(len);
        let mask = |logits: &mut [f32], from: usize, to: usize| {
            for v in &mut logits[from.min(len)..to.min(len)] {
                *v = f32::NEG_INFINITY;
            }
        };
        mask(
            logits,
            self.no_timestamps as usize,
            self.no_timestamps as usize + 1,
        );
        let n = generated.len();
        let last_was_timestamp = n >= 1 && generated[n - 1] >= self.begin;
        let penultimate_was_timestamp = n < 2 || generated[n - 2] >= self.begin;
        if last_was_timestamp {
            if penultimate_was_timestamp {
                // A pair closed a segment: text comes next.
                mask(logits, begin, len);
            } else {
                // A segment's end: another timestamp (or the end) next.
                mask(logits, 0, self.text_end as usize);
            }
        }
        if let Some(&last) = generated.iter().rev().find(|&&t| t >= self.begin) {
            // Timestamps never go back; a new segment starts after the
            // last one's end.
            let limit = if last_was_timestamp && !penultimate_was_timestamp {
                last
            } else {
                last + 1
            };
            mask(logits, begin, limit as usize);
        }
        if generated.is_empty() {
            mask(logits, 0, begin);
            if let Some(index) = self.max_initial_index {
                mask(logits, begin + index as usize + 1, len);
            }
        }
        // When the timestamps together are likelier than any text token,
        // a timestamp it is.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return;
        }
        let max = f64::from(max);
        let sum: f64 = logits.iter().map(|&v| (f64::from(v) - max).exp()).sum();
        let total = max + sum.ln();
        let timestamp_mass = log_sum_exp(&logits[begin..]) - total;
        let best_text = logits[..begin]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if timestamp_mass > f64::from(best_text) - total {
            mask(logits, 0, begin);
        }
    }

    /// What generation left of a window's tokens: transformers strips
    /// trailing padding and the end-of-text token before splitting.
    fn trim(&self, mut tokens: Vec<u32>, eos_ids: &[u32]) -> Vec<u32> {
        if let (Some(pad), Some(&last)) = (self.pad, tokens.last()) {
            if last == pad {
                let mut pads = tokens.iter().filter(|&&t| t == pad).count();
                if eos_ids.first() == Some(&pad) {
                    pads -= 1;
                }
                tokens.truncate(tokens.len() - pads);
            }
        }
        if tokens.last().is_some_and(|t| eos_ids.first() == Some(t)) {
            tokens.pop();
        }
        tokens
    }
}

fn log_sum_exp(values: &[f32]) -> f64 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let max = f64::from(max);
    max + values
        .iter()
        .map(|&v| (f64::from(v) - max).exp())
        .sum::<f64>()
        .ln()
}

/// A segment before its text is decoded.
struct RawSegment {
    start: f64,
    end: f64,
    tokens: Vec<u32>,
}

/// transformers' `_retrieve_segment`: the window's segments and how many
/// frames `seek` moves on.
fn split_segments(
    tokens: &[u32],
    begin: u32,
    seek: usize,
    window_frames: usize,
    input_stride: usize,
) -> (Vec<RawSegment>, usize) {
    let time_offset = seek as f64 * TIME_PRECISION / input_stride as f64;
    let is_timestamp: Vec<bool> = tokens.iter().map(|&t| t >= begin).collect();
    let n = tokens.len();
    let position = |t: u32| f64::from(t) - f64::from(begin);
    let single_timestamp_ending = n >= 2 && !is_timestamp[n - 2] && is_timestamp[n - 1];
    let mut slices: Vec<usize> = (0..n.saturating_sub(1))
        .filter(|&i| is_timestamp[i] && is_timestamp[i + 1])
        .map(|i| i + 1)
        .collect();
    if slices.is_empty() {
        // No segment closed: the whole decoding is one segment.
        // transformers computes the window's length in float32 here.
        let mut last = (window_frames as f32 * 0.01f32 / TIME_PRECISION as f32).trunc() as f64;
        if let Some(&t) = tokens.iter().rev().find(|&&t| t >= begin) {
            if t != begin {
                last = position(t);
            }
        }
        let segment = RawSegment {
            start: time_offset,
            end: time_offset + last * TIME_PRECISION,
            tokens: tokens.to_vec(),
        };
        return (vec![segment], window_frames);
    }
    if single_timestamp_ending {
        slices.push(n);
    } else if let Some(last) = slices.last_mut() {
        // The last segment keeps its closing timestamp pair.
        *last += 1;
    }
    let mut segments = Vec::with_capacity(slices.len());
    let mut last_slice = 0;
    for (i, &current) in slices.iter().enumerate() {
        let is_last = i + 1 == slices.len();
        let sliced = &tokens[last_slice..current];
        let end_token = if !is_last || single_timestamp_ending {
            sliced[sliced.len() - 1]
        } else {
            sliced[sliced.len().saturating_sub(2)]
        };
        segments.push(RawSegment {
            start: time_offset + position(sliced[0]) * TIME_PRECISION,
            end: time_offset + position(end_token) * TIME_PRECISION,
            tokens: sliced.to_vec(),
        });
        last_slice = current;
    }
    let offset = if single_timestamp_ending {
        window_frames
    } else {
        // The rest was cut off mid-speech: decode it again from the last
        // complete segment's end.
        let last_timestamp = tokens[last_slice - 2].saturating_sub(begin) as usize;
        last_timestamp * input_stride
    };
    (segments, offset)
}

impl WhisperRunner {
    /// The sequential long-form loop over `frames` (see the module
    /// comment).
    pub(super) fn run_with_timestamps(
        &mut self,
        model: &str,
        device: &Device,
        frames: &Frames<'_>,
        options: &super::TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        let rules = self.timestamps.clone().ok_or_else(|| {
            SkillError::InvalidInput(
                "this Whisper model's generation config has no <|notimestamps|> token, so it has no timestamps; audio longer than 30 s needs them".to_owned(),
            )
        })?;
        let mels = self.front.config().feature_size;
        let width = self.front.frames();
        let input_stride = 2;
        let total = frames.total();
        let encode =
            |runner: &mut Self, start: usize, count: usize| -> Result<Tensor, SkillError> {
                let features = frames.window(start, count, width, mels);
                let input = Tensor::from_vec(features, (1, mels, width), device)?;
                Ok(runner.model.encode(&input)?)
            };
        // The language is detected (when it must be) on the first window.
        let first_window = encode(self, 0, width.min(total))?;
        let prefix = self.decoder_prefix(
            model,
            &first_window,
            options.language.as_deref(),
            options.task.as_deref(),
            true,
        )?;
        let room = self.model.room().saturating_sub(prefix.len());
        let max_new_tokens = options.max_new_tokens.min(room);
        if max_new_tokens == 0 {
            return Err(SkillError::InvalidInput(format!(
                "the decoder prefix fills the model's {} positions",
                self.model.room()
            )));
        }
        let mut encoded = Some(first_window);
        let mut seek = 0usize;
        let mut segments = Vec::new();
        while seek < total {
            let window_frames = (total - seek).min(width);
            let states = match encoded.take() {
                Some(states) => states,
                None => encode(self, seek, window_frames)?,
            };
            let tokens = self.generate_window(&prefix, &states, &rules, max_new_tokens)?;
            let tokens = rules.trim(tokens, &self.eos_ids);
            let (found, offset) =
                split_segments(&tokens, rules.begin, seek, window_frames, input_stride);
            let window_seek = seek;
            segments.extend(found.into_iter().map(|s| (window_seek, s)));
            // A window that does not move `seek` would be decoded again
            // forever; transformers' loop has no such guard, but no
            // decoding can end there (timestamps only grow).
            seek += offset.max(1);
        }
        let mut token_ids = Vec::new();
        let mut timed = Vec::with_capacity(segments.len());
        for (id, (seek, segment)) in segments.into_iter().enumerate() {
            token_ids.extend_from_slice(&segment.tokens);
            timed.push(TimedSegment {
                id,
                seek,
                start: segment.start,
                end: segment.end,
                text: self.decode_text(&segment.tokens, rules.begin)?,
                tokens: segment.tokens,
            });
        }
        Ok(Transcription {
            text: self.decode_text(&token_ids, rules.begin)?,
            token_ids,
            words: Vec::new(),
            segments: timed,
            language: self.language_of(&prefix),
            decoder_prefix: prefix,
            frame_ids: Vec::new(),
            preprocessed: BTreeMap::new(),
            outputs: BTreeMap::new(),
        })
    }

    /// Greedy decoding of one window after `prefix`, with the generation
    /// config's suppression and the timestamp rules. The end-of-text token
    /// is kept when produced.
    fn generate_window(
        &mut self,
        prefix: &[u32],
        encoded: &Tensor,
        rules: &TimestampRules,
        max_new_tokens: usize,
    ) -> Result<Vec<u32>, SkillError> {
        self.model.reset();
        let result = (|| {
            let mut generated: Vec<u32> = Vec::new();
            let mut logits = self.model.decode(prefix, encoded)?.to_vec1::<f32>()?;
            loop {
                let mask = |logits: &mut [f32], ids: &[u32]| {
                    for &id in ids {
                        if let Some(v) = logits.get_mut(id as usize) {
                            *v = f32::NEG_INFINITY;
                        }
                    }
                };
                if generated.is_empty() {
                    mask(&mut logits, &self.begin_suppress);
                }
                mask(&mut logits, &self.suppress);
                rules.apply(&generated, &mut logits);
                let next = first_argmax(&logits);
                generated.push(next);
                if self.eos_ids.contains(&next) || generated.len() >= max_new_tokens {
                    return Ok(generated);
                }
                logits = self.model.decode(&[next], encoded)?.to_vec1::<f32>()?;
            }
        })();
        self.model.reset();
        result
    }

    /// Text of `tokens`, timestamps and special tokens left out, as
    /// `batch_decode(skip_special_tokens=True)` gives it.
    fn decode_text(&self, tokens: &[u32], timestamp_begin: u32) -> Result<String, SkillError> {
        let text_ids: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < timestamp_begin)
            .collect();
        self.tokenizer
            .decode(&text_ids, true)
            .map_err(|e| SkillError::InvalidInput(format!("cannot decode the tokens: {e}")))
    }
}

/// The index of the largest value, the first of equals (as `argmax`).
fn first_argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_closes_a_segment_and_the_cut_off_rest_is_decoded_again() {
        // <|0.00|> a <|1.00|><|1.00|> b <|2.00|><|2.00|> c (cut off)
        let begin = 100;
        let tokens = [100, 1, 150, 150, 2, 200, 200, 3];
        let (segments, offset) = split_segments(&tokens, begin, 0, 3000, 2);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].tokens, vec![100, 1, 150]);
        assert_eq!(segments[1].tokens, vec![150, 2, 200, 200]);
        assert_eq!((segments[1].start, segments[1].end), (1.0, 2.0));
        assert_eq!(offset, 200);
    }

    #[test]
    fn a_single_timestamp_ending_moves_past_the_window() {
        let tokens = [100, 1, 150, 150, 2, 200];
        let (segments, offset) = split_segments(&tokens, 100, 3000, 1234, 2);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].tokens, vec![150, 2, 200]);
        assert_eq!(segments[0].start, 30.0);
        assert_eq!(offset, 1234);
    }

    #[test]
    fn no_pair_makes_one_segment_to_the_last_timestamp() {
        let (segments, offset) = split_segments(&[100, 1, 2], 100, 0, 1234, 2);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].end, 617.0 * 0.02);
        assert_eq!(offset, 1234);
        // transformers computes this in float32: 30 frames give 14, not 15.
        let (segments, _) = split_segments(&[100, 1, 2], 100, 0, 30, 2);
        assert_eq!(segments[0].end, 14.0 * 0.02);
        let (segments, _) = split_segments(&[100, 1, 125], 100, 0, 3000, 2);
        assert_eq!(segments[0].end, 25.0 * 0.02);
    }
}
