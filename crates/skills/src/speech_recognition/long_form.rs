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
//!
//! A longer recording is streamed twice and never held: a survey pass for
//! its length and log-mel maximum (the features' floor), then a pass whose
//! frames feed the windows as they arrive (`run_streamed`).

use super::{TranscribeOptions, Transcription, WhisperRunner};
use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_media::preprocess::log_mel::LogMel;
use ipfs_accelerate_media::{stream_at, AudioSource};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// What a sink returns to stop the decoder when the model failed (the
/// model's error is kept aside and returned instead).
const STOP: &str = "stopped";

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

/// What a first pass over a recording found.
#[derive(Debug)]
pub(super) enum Survey {
    /// Its features fit one window (as transformers decides: at most
    /// `width` frames of `samples / hop`): the samples, at the model's rate.
    Short(Vec<f32>),
    /// Longer: decoded long-form.
    Long {
        /// Feature frames of the whole recording (`samples / hop`).
        frames: usize,
        /// The recording's largest raw log-mel value less 8.
        floor: f32,
    },
}

/// The sequential loop's state: the frames from `first` on (scaled, one
/// column per frame), where the next window starts, and what was found.
struct WindowLoop {
    columns: VecDeque<Vec<f32>>,
    first: usize,
    seek: usize,
    total: usize,
    prefix: Option<Vec<u32>>,
    max_new_tokens: usize,
    segments: Vec<(usize, RawSegment)>,
}

impl WindowLoop {
    fn new(total: usize) -> Self {
        Self {
            columns: VecDeque::new(),
            first: 0,
            seek: 0,
            total,
            prefix: None,
            max_new_tokens: 0,
            segments: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.seek >= self.total
    }

    /// Whether the next window's frames have all arrived.
    fn ready(&self, width: usize) -> bool {
        self.first + self.columns.len() >= self.seek + (self.total - self.seek).min(width)
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
    /// The first pass over a recording (at the model's rate): its length,
    /// frame count and log-mel maximum, and the samples themselves while
    /// it fits one window.
    pub(super) fn survey(&self, source: &dyn AudioSource) -> Result<Survey, SkillError> {
        let config = self.front.config();
        // From this many samples on the features are wider than a window.
        let long_from = (self.front.frames() + 1) * config.hop_length;
        let mut frames = self.front.frames_of_stream();
        let (mut samples, mut max) = (0usize, f32::NEG_INFINITY);
        let mut short = Some(Vec::new());
        stream_at(source, config.sampling_rate, &mut |block| {
            samples += block.len();
            match short.as_mut() {
                Some(kept) if samples < long_from => kept.extend_from_slice(block),
                // Long-form: the maximum over all frames is needed, those
                // of the samples kept so far included. (A short recording
                // never computes them here: its window's features are
                // computed once, by the short-form front end.)
                _ => {
                    let mut fold = |_: usize, raw: &[f32]| {
                        max = raw.iter().copied().fold(max, f32::max);
                    };
                    if let Some(kept) = short.take() {
                        frames.push(&kept, &mut fold);
                    }
                    frames.push(block, &mut fold);
                }
            }
            Ok(())
        })
        .map_err(|why| SkillError::InvalidInput(format!("{}: {why}", source.name())))?;
        if samples == 0 {
            return Err(SkillError::InvalidInput(format!(
                "{} holds no samples",
                source.name()
            )));
        }
        Ok(match short {
            Some(samples) => Survey::Short(samples),
            None => {
                let frames = frames.finish(|_, raw| max = raw.iter().copied().fold(max, f32::max));
                Survey::Long {
                    frames,
                    floor: max - 8.0,
                }
            }
        })
    }

    /// The sequential long-form loop over a recording longer than a
    /// window, streamed a second time: each window is decoded as soon as
    /// its frames have arrived, and frames before the next window are
    /// dropped.
    pub(super) fn run_streamed(
        &mut self,
        model: &str,
        device: &Device,
        source: &dyn AudioSource,
        (survey_frames, floor): (usize, f32),
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        let rules = self.rules()?;
        let front = Arc::clone(&self.front);
        let width = front.frames();
        let mut frames = front.frames_of_stream();
        let mut state = WindowLoop::new(survey_frames);
        let mut failure = None;
        let streamed = stream_at(source, front.config().sampling_rate, &mut |block| {
            frames.push(block, |frame, raw| {
                // More frames than the first pass found: the file grew
                // in between (checked after the pass); none are kept.
                if frame < state.total {
                    state
                        .columns
                        .push_back(raw.iter().map(|&v| LogMel::scale(v, floor)).collect());
                }
            });
            while !state.done() && state.ready(width) {
                if let Err(e) = self.window_step(&mut state, model, device, &rules, options) {
                    failure = Some(e);
                    return Err(STOP.to_owned());
                }
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        streamed.map_err(|why| SkillError::InvalidInput(format!("{}: {why}", source.name())))?;
        let total = frames.finish(|frame, raw| {
            if frame < state.total {
                state
                    .columns
                    .push_back(raw.iter().map(|&v| LogMel::scale(v, floor)).collect());
            }
        });
        if total != survey_frames {
            return Err(SkillError::InvalidInput(format!(
                "{} changed while it was read ({survey_frames} frames, then {total})",
                source.name()
            )));
        }
        while !state.done() {
            self.window_step(&mut state, model, device, &rules, options)?;
        }
        self.finish_loop(state, &rules)
    }

    /// The same loop over one window's padded features (`[mels × width]`,
    /// audio of at most 30 s with timestamps asked for), as transformers
    /// runs it on short-form input.
    pub(super) fn run_padded(
        &mut self,
        model: &str,
        device: &Device,
        features: &[f32],
        options: &TranscribeOptions,
    ) -> Result<Transcription, SkillError> {
        let rules = self.rules()?;
        let mels = self.front.config().feature_size;
        let width = self.front.frames();
        let mut state = WindowLoop::new(width);
        state.columns = (0..width)
            .map(|c| (0..mels).map(|m| features[m * width + c]).collect())
            .collect();
        while !state.done() {
            self.window_step(&mut state, model, device, &rules, options)?;
        }
        self.finish_loop(state, &rules)
    }

    fn rules(&self) -> Result<TimestampRules, SkillError> {
        self.timestamps.clone().ok_or_else(|| {
            SkillError::InvalidInput(
                "this Whisper model's generation config has no <|notimestamps|> token, so it has no timestamps; audio longer than 30 s needs them".to_owned(),
            )
        })
    }

    /// Decodes the window at `state.seek` (its frames must be there) and
    /// moves `seek` on.
    fn window_step(
        &mut self,
        state: &mut WindowLoop,
        model: &str,
        device: &Device,
        rules: &TimestampRules,
        options: &TranscribeOptions,
    ) -> Result<(), SkillError> {
        let mels = self.front.config().feature_size;
        let width = self.front.frames();
        let input_stride = 2;
        let seek = state.seek;
        let window_frames = (state.total - seek).min(width);
        let mut input = vec![0f32; mels * width];
        for c in 0..window_frames {
            let column = &state.columns[seek + c - state.first];
            for (m, &v) in column.iter().enumerate() {
                input[m * width + c] = v;
            }
        }
        let input = Tensor::from_vec(input, (1, mels, width), device)?;
        let encoded = self.model.encode(&input)?;
        let prefix = match state.prefix.take() {
            Some(prefix) => prefix,
            None => {
                // The language is detected (when it must be) on the first
                // window, as `detect_language` does.
                let prefix = self.decoder_prefix(
                    model,
                    &encoded,
                    options.language.as_deref(),
                    options.task.as_deref(),
                    true,
                )?;
                let room = self.model.room().saturating_sub(prefix.len());
                state.max_new_tokens = options.max_new_tokens.min(room);
                if state.max_new_tokens == 0 {
                    return Err(SkillError::InvalidInput(format!(
                        "the decoder prefix fills the model's {} positions",
                        self.model.room()
                    )));
                }
                prefix
            }
        };
        let tokens = self.generate_window(&prefix, &encoded, rules, state.max_new_tokens);
        state.prefix = Some(prefix);
        let tokens = rules.trim(tokens?, &self.eos_ids);
        let (found, offset) =
            split_segments(&tokens, rules.begin, seek, window_frames, input_stride);
        state.segments.extend(found.into_iter().map(|s| (seek, s)));
        // A window that does not move `seek` would be decoded again
        // forever; transformers' loop has no such guard, but no decoding
        // can end there (timestamps only grow).
        state.seek += offset.max(1);
        while state.first < state.seek && !state.columns.is_empty() {
            state.columns.pop_front();
            state.first += 1;
        }
        Ok(())
    }

    /// The answer: the segments with their text, and all their tokens.
    fn finish_loop(
        &self,
        state: WindowLoop,
        rules: &TimestampRules,
    ) -> Result<Transcription, SkillError> {
        let prefix = state.prefix.unwrap_or_default();
        let mut token_ids = Vec::new();
        let mut timed = Vec::with_capacity(state.segments.len());
        for (id, (seek, segment)) in state.segments.into_iter().enumerate() {
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
