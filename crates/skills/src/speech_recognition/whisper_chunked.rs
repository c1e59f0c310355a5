//! Whisper over long audio the ASR pipeline's way (`chunk_length_s`): the
//! recording is cut into overlapping chunks (`chunk_iter`), each chunk is
//! transcribed alone as short-form audio, and the chunks' tokens are merged
//! where their overlaps agree (`_decode_asr` and
//! `_find_longest_common_sequence` in transformers' Whisper tokenizer,
//! 4.57). transformers recommends the sequential long-form decoding
//! (`long_form.rs`) instead; this one exists because the pipeline is what
//! many people run, and its answers are reproduced here.

use super::long_form::TimedSegment;
use super::{TranscribeOptions, Transcription, WhisperRunner};
use crate::SkillError;
use candle_core::Device;
use std::collections::{BTreeMap, HashSet};

/// Whisper's language codes (transformers' `LANGUAGES`), for recognising
/// a language token among the special tokens.
const LANGUAGE_CODES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// One chunk's tokens and its stride in seconds (length, left, right).
struct ChunkTokens {
    tokens: Vec<u32>,
    stride: (f64, f64, f64),
}

/// A merged piece of the pipeline's answer.
#[derive(Debug, Clone, Default)]
struct PipelineChunk {
    start: Option<f64>,
    end: Option<f64>,
    text: String,
    tokens: Vec<u32>,
}

impl WhisperRunner {
    /// The pipeline's answer for `samples` in chunks of `chunk_length_s`
    /// with `stride_length_s` on each side.
    pub(super) fn transcribe_chunked(
        &mut self,
        model: &str,
        device: &Device,
        samples: &[f32],
        options: &TranscribeOptions,
        chunk_length_s: f64,
        stride_length_s: f64,
    ) -> Result<Transcription, SkillError> {
        let rate = f64::from(self.front.config().sampling_rate);
        let n_samples = self.front.config().n_samples;
        let chunk_len = (chunk_length_s * rate).round_ties_even();
        let stride = (stride_length_s * rate).round_ties_even();
        if !(chunk_len.is_finite() && stride.is_finite())
            || stride < 0.0
            || chunk_len < 2.0 * stride
        {
            return Err(SkillError::InvalidInput(format!(
                "chunks of {chunk_length_s} s need less than half of them as overlap on each side ({stride_length_s} s given)"
            )));
        }
        let (chunk_len, stride) = (chunk_len as usize, stride as usize);
        if chunk_len == 0 || chunk_len > n_samples {
            return Err(SkillError::InvalidInput(format!(
                "Whisper chunks are at most {:.0} s long ({chunk_length_s} s given)",
                n_samples as f64 / rate
            )));
        }
        if chunk_len == 2 * stride {
            return Err(SkillError::InvalidInput(
                "the overlap leaves nothing between chunks to decode".to_owned(),
            ));
        }
        let mut outputs = Vec::new();
        let mut language = None;
        for span in super::pipeline_chunks(samples.len(), chunk_len, stride) {
            let chunk = &samples[span.start..span.end];
            let features = self.front.features(chunk)?;
            let transcription =
                self.run_window(model, device, features, options.timestamps, options)?;
            language = language.or(transcription.language);
            let mut tokens = transcription.token_ids;
            // generate leaves the end-of-text token off each chunk.
            if tokens
                .last()
                .is_some_and(|t| self.eos_ids.first() == Some(t))
            {
                tokens.pop();
            }
            outputs.push(ChunkTokens {
                tokens,
                stride: (
                    chunk.len() as f64 / rate,
                    span.left as f64 / rate,
                    span.right as f64 / rate,
                ),
            });
        }
        let time_precision =
            self.front.config().n_samples as f64 / rate / (self.front.frames() / 2) as f64;
        let (text, chunks) = self.decode_asr(&outputs, options.timestamps, time_precision)?;
        let duration = samples.len() as f64 / rate;
        let mut segments = Vec::new();
        if options.timestamps {
            let mut previous_end = 0.0;
            for (id, chunk) in chunks.into_iter().enumerate() {
                // The pipeline leaves a time out where Whisper gave none:
                // the previous end, or the recording's end, stands in.
                let start = chunk.start.unwrap_or(previous_end);
                let end = chunk.end.unwrap_or(duration);
                previous_end = end;
                segments.push(TimedSegment {
                    id,
                    seek: 0,
                    start,
                    end,
                    text: chunk.text,
                    tokens: chunk.tokens,
                });
            }
        }
        Ok(Transcription {
            text,
            token_ids: Vec::new(),
            decoder_prefix: Vec::new(),
            language,
            words: Vec::new(),
            segments,
            frame_ids: Vec::new(),
            preprocessed: BTreeMap::new(),
            outputs: BTreeMap::new(),
        })
    }

    /// transformers' `_decode_asr`: the chunks' tokens merged into text
    /// and timed pieces.
    fn decode_asr(
        &self,
        outputs: &[ChunkTokens],
        return_timestamps: bool,
        time_precision: f64,
    ) -> Result<(String, Vec<PipelineChunk>), SkillError> {
        const SEGMENT_SIZE: f64 = 1500.0;
        let id_of = |token: &str| self.tokenizer.token_to_id(token);
        // The tokenizer's own ids, as the pipeline's tokenizer reads them.
        let timestamp_begin = id_of("<|notimestamps|>").map_or(u32::MAX, |id| id + 1);
        let prompt_id = id_of("<|startofprev|>");
        let start_id = id_of("<|startoftranscript|>");
        let decode = |ids: &[u32]| -> Result<String, SkillError> {
            self.tokenizer
                .decode(ids, false)
                .map_err(|e| SkillError::InvalidInput(format!("cannot decode the tokens: {e}")))
        };
        let language_of = |token: u32| -> Option<String> {
            let text = self.tokenizer.id_to_token(token)?;
            let inner: String = text
                .chars()
                .skip(2)
                .take(text.chars().count().saturating_sub(4))
                .collect();
            LANGUAGE_CODES.contains(&inner.as_str()).then_some(inner)
        };
        let mut chunks = Vec::new();
        let mut chunk = PipelineChunk::default();
        let mut time_offset = 0.0f64;
        let mut previous_tokens: Vec<Vec<u32>> = Vec::new();
        let mut skip = false;
        let mut last_language: Option<String> = None;
        let finish = |chunk: &mut PipelineChunk,
                      previous: &mut Vec<Vec<u32>>,
                      chunks: &mut Vec<PipelineChunk>|
         -> Result<(), SkillError> {
            let resolved = longest_common_sequence(previous);
            chunk.text = decode(&resolved)?;
            chunk.tokens = resolved;
            chunks.push(std::mem::take(chunk));
            previous.clear();
            Ok(())
        };
        for output in outputs {
            let token_ids = strip_prompt(&output.tokens, prompt_id, start_id);
            let mut last_timestamp: Option<u32> = None;
            let mut first_timestamp = f64::from(timestamp_begin);
            let (mut cur_max, mut prev_segments_len, mut penultimate) = (0.0f64, 0.0f64, 0.0f64);
            let (chunk_len, stride_left, stride_right) = output.stride;
            time_offset -= stride_left;
            let right_stride_start = chunk_len - stride_right;
            if stride_left != 0.0 {
                first_timestamp = stride_left / time_precision + f64::from(timestamp_begin);
            }
            if stride_right != 0.0 {
                for &token in token_ids.iter().rev() {
                    if token >= timestamp_begin {
                        if last_timestamp.is_some()
                            && f64::from(token - timestamp_begin) * time_precision
                                < right_stride_start
                        {
                            break;
                        }
                        last_timestamp = Some(token);
                    }
                }
            }
            let mut current: Vec<u32> = Vec::new();
            for (i, &token) in token_ids.iter().enumerate() {
                if self.special_ids.contains(&token) {
                    if let Some(language) = language_of(token) {
                        if last_language.as_ref().is_some_and(|l| *l != language)
                            && !return_timestamps
                        {
                            previous_tokens.push(std::mem::take(&mut current));
                            finish(&mut chunk, &mut previous_tokens, &mut chunks)?;
                        }
                        last_language = Some(language);
                    }
                } else if token >= timestamp_begin {
                    let timestamp = f64::from(token - timestamp_begin) * time_precision;
                    if timestamp < cur_max {
                        let last_was_single_ending = i >= 2
                            && !(token_ids[i - 1] >= timestamp_begin
                                && token_ids[i - 2] >= timestamp_begin);
                        if last_was_single_ending {
                            prev_segments_len += time_precision * SEGMENT_SIZE;
                        } else {
                            cur_max = penultimate;
                            prev_segments_len += penultimate;
                        }
                    }
                    penultimate = cur_max;
                    cur_max = timestamp;
                    let time = round2(
                        f64::from(token - timestamp_begin) * time_precision
                            + time_offset
                            + prev_segments_len,
                    );
                    if last_timestamp.is_some_and(|last| token >= last) {
                        // Inside the right stride: left for the next chunk.
                        skip = true;
                    } else if skip
                        || (!previous_tokens.is_empty() && f64::from(token) < first_timestamp)
                    {
                        skip = false;
                    } else if chunk.start.is_none() {
                        chunk.start = Some(time);
                    } else if chunk.start != Some(time) {
                        chunk.end = Some(time);
                        previous_tokens.push(std::mem::take(&mut current));
                        finish(&mut chunk, &mut previous_tokens, &mut chunks)?;
                    }
                } else {
                    current.push(token);
                }
            }
            time_offset += chunk_len - stride_right;
            if !current.is_empty() {
                previous_tokens.push(current);
            } else if !previous_tokens.iter().any(|p| !p.is_empty()) {
                chunk = PipelineChunk::default();
                previous_tokens.clear();
            }
        }
        if !previous_tokens.is_empty() {
            finish(&mut chunk, &mut previous_tokens, &mut chunks)?;
        }
        let text = chunks.iter().map(|c| c.text.as_str()).collect();
        Ok((text, chunks))
    }
}

/// The tokenizer's `_strip_prompt`: a sequence that starts with a prompt
/// keeps what follows `<|startoftranscript|>`.
fn strip_prompt(tokens: &[u32], prompt: Option<u32>, start: Option<u32>) -> Vec<u32> {
    if prompt.is_some() && tokens.first().copied() == prompt {
        return match start.and_then(|s| tokens.iter().position(|&t| t == s)) {
            Some(at) => tokens[at..].to_vec(),
            None => Vec::new(),
        };
    }
    tokens.to_vec()
}

/// Python's `round(x, 2)`.
fn round2(x: f64) -> f64 {
    format!("{x:.2}").parse().unwrap_or(x)
}

/// transformers' `_find_longest_common_sequence`: consecutive chunks'
/// tokens joined at their best-matching overlap, the left chunk trusted
/// for the overlap's first half and the right one for its second.
fn longest_common_sequence(sequences: &[Vec<u32>]) -> Vec<u32> {
    let Some((first, rest)) = sequences.split_first() else {
        return Vec::new();
    };
    let mut left = first.clone();
    let mut total = Vec::new();
    for right in rest {
        let (left_len, right_len) = (left.len(), right.len());
        let mut best = 0.0f64;
        let mut indices = (left_len, left_len, 0, 0);
        for i in 1..left_len + right_len {
            let eps = i as f64 / 10000.0;
            let left_start = left_len.saturating_sub(i);
            let left_stop = left_len.min(left_len + right_len - i);
            let right_start = i.saturating_sub(left_len);
            let right_stop = right_len.min(i);
            let matches = left[left_start..left_stop]
                .iter()
                .zip(&right[right_start..right_stop])
                .filter(|(a, b)| a == b)
                .count();
            let matching = matches as f64 / i as f64 + eps;
            if matches > 1 && matching > best {
                best = matching;
                indices = (left_start, left_stop, right_start, right_stop);
            }
        }
        let (left_start, left_stop, right_start, right_stop) = indices;
        let left_mid = (left_stop + left_start) / 2;
        let right_mid = (right_stop + right_start) / 2;
        total.extend_from_slice(&left[..left_mid]);
        left = right[right_mid..].to_vec();
    }
    total.extend(left);
    total
}

/// The tokenizer's special ids as `all_special_ids` lists them: its
/// bos/eos/unk/pad tokens and `additional_special_tokens`, from
/// `special_tokens_map.json`, else `tokenizer_config.json`.
pub(super) fn special_ids(
    tokenizer: &tokenizers::Tokenizer,
    special_tokens_map: Option<&serde_json::Value>,
    tokenizer_config: Option<&serde_json::Value>,
) -> HashSet<u32> {
    let content = |v: &serde_json::Value| -> Option<String> {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| v.get("content").and_then(|c| c.as_str()).map(str::to_owned))
    };
    let mut ids = HashSet::new();
    for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
        let token = special_tokens_map
            .and_then(|m| m.get(key))
            .or_else(|| tokenizer_config.and_then(|c| c.get(key)))
            .and_then(content);
        if let Some(id) = token.and_then(|t| tokenizer.token_to_id(&t)) {
            ids.insert(id);
        }
    }
    let additional = special_tokens_map
        .and_then(|m| m.get("additional_special_tokens"))
        .or_else(|| tokenizer_config.and_then(|c| c.get("additional_special_tokens")))
        .and_then(serde_json::Value::as_array);
    for token in additional.into_iter().flatten().filter_map(content) {
        if let Some(id) = tokenizer.token_to_id(&token) {
            ids.insert(id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_chunks_join_at_their_common_run() {
        let joined = longest_common_sequence(&[vec![1, 2, 3, 4, 5], vec![3, 4, 5, 6, 7]]);
        assert_eq!(joined, vec![1, 2, 3, 4, 5, 6, 7]);
        // One common token is not a match: both are kept whole.
        let joined = longest_common_sequence(&[vec![1, 2], vec![2, 9]]);
        assert_eq!(joined, vec![1, 2, 2, 9]);
    }

    #[test]
    fn times_round_as_python_does() {
        assert_eq!(round2(24.999999999), 25.0);
        assert_eq!(round2(0.1 + 0.2), 0.3);
    }
}
