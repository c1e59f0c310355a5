//! `ClapFeatureExtractor`: log-mel spectrograms in dB of audio padded or cut
//! to `max_length_s`, driven by `preprocessor_config.json`.
//!
//! transformers draws random numbers in two places; here both are fixed
//! rules (documented in `docs/multimodal.md`):
//! - `truncation: "rand_trunc"` of audio longer than `max_length_s` keeps
//!   the first `max_length_s` (transformers: a random offset);
//! - `truncation: "fusion"` of longer audio takes the middle start of each
//!   of the three ranges transformers draws a chunk from (transformers: a
//!   random start in each).
//!
//! With `fusion`, transformers also marks one random clip of a batch as
//! longer when none is; a request here is a batch of one, so that clip is
//! always marked, as in transformers.

use super::stft::{mel_energy, mel_filters, MelFilter, MelScale, PowerStft};
use crate::PreprocessError;
use serde::Deserialize;

/// What to do with audio longer than `max_length_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Truncation {
    /// Keep one window (here the first), Slaney mel filters, one channel.
    #[serde(rename = "rand_trunc")]
    RandTrunc,
    /// Four channels (the whole clip shrunk, three chunks), HTK mel filters.
    #[serde(rename = "fusion")]
    Fusion,
}

impl Truncation {
    /// The name `preprocessor_config.json` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::RandTrunc => "rand_trunc",
            Self::Fusion => "fusion",
        }
    }
}

/// How audio shorter than `max_length_s` is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Padding {
    /// Repeated whole `int(max / len)` times, then zero-padded.
    #[serde(rename = "repeatpad")]
    RepeatPad,
    /// Repeated until it fills `max_length_s`, the last copy cut.
    #[serde(rename = "repeat")]
    Repeat,
    /// Zero-padded.
    #[serde(rename = "pad")]
    Pad,
}

/// The keys of `preprocessor_config.json` that matter here (defaults are
/// transformers').
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClapFeatureConfig {
    /// Mel bins.
    pub feature_size: usize,
    /// Rate the model expects; input is resampled to it.
    pub sampling_rate: u32,
    /// Samples between frames.
    pub hop_length: usize,
    /// Window the audio is padded or cut to, in seconds.
    pub max_length_s: f64,
    /// FFT size (= frame and window length).
    pub fft_window_size: usize,
    /// Lowest mel filter edge, Hz.
    pub frequency_min: f64,
    /// Highest mel filter edge, Hz.
    pub frequency_max: f64,
    /// Read but, as in transformers, never applied.
    pub top_db: Option<f64>,
    /// Long audio.
    pub truncation: Truncation,
    /// Short audio.
    pub padding: Padding,
}

impl Default for ClapFeatureConfig {
    fn default() -> Self {
        Self {
            feature_size: 64,
            sampling_rate: 48_000,
            hop_length: 480,
            max_length_s: 10.0,
            fft_window_size: 1024,
            frequency_min: 0.0,
            frequency_max: 14_000.0,
            top_db: None,
            truncation: Truncation::Fusion,
            padding: Padding::RepeatPad,
        }
    }
}

/// `input_features` of one clip, `[channels, frames, mels]` row-major, and
/// its `is_longer` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct ClapFeatures {
    /// The values.
    pub values: Vec<f32>,
    /// 1, or 4 with `fusion`.
    pub channels: usize,
    /// Frames per channel.
    pub frames: usize,
    /// Mel bins.
    pub mels: usize,
    /// transformers' `is_longer` (what a fused model looks at).
    pub is_longer: bool,
}

/// Mel bins `fusion` shrinks the whole clip to: transformers fixes 64.
const FUSION_SHRINK_MELS: usize = 64;

/// A ready front end.
pub struct ClapFeatureExtractor {
    config: ClapFeatureConfig,
    max_samples: usize,
    stft: PowerStft,
    // [mel][frequency bin]; Slaney-normalised Slaney-scale unless fusion,
    // which uses unnormalised HTK-scale filters.
    filters: Vec<MelFilter>,
}

impl std::fmt::Debug for ClapFeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClapFeatureExtractor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClapFeatureExtractor {
    /// Checks the config and builds the filters.
    pub fn new(config: ClapFeatureConfig) -> Result<Self, PreprocessError> {
        if config.fft_window_size < 2 || config.hop_length == 0 || config.feature_size == 0 {
            return Err(PreprocessError::Config(format!(
                "unusable fft_window_size {} / hop_length {} / feature_size {}",
                config.fft_window_size, config.hop_length, config.feature_size
            )));
        }
        if config.sampling_rate == 0 {
            return Err(PreprocessError::Config("sampling_rate is 0".to_owned()));
        }
        let max_samples = config.max_length_s * f64::from(config.sampling_rate);
        if !(max_samples.is_finite() && max_samples.fract() == 0.0) {
            return Err(PreprocessError::Config(format!(
                "max_length_s {} is not a whole number of samples at {} Hz",
                config.max_length_s, config.sampling_rate
            )));
        }
        if max_samples < config.fft_window_size as f64 || max_samples > u32::MAX as f64 {
            return Err(PreprocessError::Config(format!(
                "max_length_s {} gives {max_samples} samples; at least fft_window_size {} are needed",
                config.max_length_s, config.fft_window_size
            )));
        }
        let nyquist = f64::from(config.sampling_rate) / 2.0;
        if !(0.0..=config.frequency_max).contains(&config.frequency_min)
            || config.frequency_max > nyquist
        {
            return Err(PreprocessError::Config(format!(
                "frequency_min {} / frequency_max {} must satisfy 0 <= min <= max <= {nyquist}",
                config.frequency_min, config.frequency_max
            )));
        }
        if config.top_db.is_some() {
            tracing::debug!("top_db is set; transformers' CLAP extractor does not apply it either");
        }
        let stft = PowerStft::new(config.fft_window_size, config.hop_length);
        let (scale, slaney_norm) = match config.truncation {
            Truncation::Fusion => (MelScale::Htk, false),
            Truncation::RandTrunc => (MelScale::Slaney, true),
        };
        let filters = mel_filters(
            stft.bins(),
            config.feature_size,
            config.frequency_min,
            config.frequency_max,
            f64::from(config.sampling_rate),
            scale,
            slaney_norm,
        );
        Ok(Self {
            max_samples: max_samples as usize,
            config,
            stft,
            filters,
        })
    }

    /// The config in use.
    pub fn config(&self) -> &ClapFeatureConfig {
        &self.config
    }

    /// Channels of every output.
    pub fn channels(&self) -> usize {
        match self.config.truncation {
            Truncation::Fusion => 4,
            Truncation::RandTrunc => 1,
        }
    }

    /// Every frame count an output can have: `max_length_s` of audio gives
    /// the first; longer audio with `fusion` gives chunks of the second
    /// (they differ for odd `fft_window_size`).
    pub fn frame_counts(&self) -> Vec<usize> {
        let mut counts = vec![self.stft.frame_count(self.max_samples)];
        let chunk = self.max_samples / self.config.hop_length + 1;
        if self.config.truncation == Truncation::Fusion && chunk != counts[0] {
            counts.push(chunk);
        }
        counts
    }

    /// `input_features` of `samples` (mono, at `sampling_rate`).
    pub fn features(&self, samples: &[f32]) -> Result<ClapFeatures, PreprocessError> {
        if samples.is_empty() {
            return Err(PreprocessError::Input(
                "the audio holds no samples".to_owned(),
            ));
        }
        let max = self.max_samples;
        let mels = self.config.feature_size;
        if samples.len() > max {
            return match self.config.truncation {
                Truncation::RandTrunc => {
                    let (values, frames) = self.log_mel(&samples[..max]);
                    Ok(ClapFeatures {
                        values,
                        channels: 1,
                        frames,
                        mels,
                        is_longer: true,
                    })
                }
                Truncation::Fusion => self.fusion_of_long(samples),
            };
        }
        let waveform = self.padded(samples);
        let (mel, frames) = self.log_mel(&waveform);
        let channels = self.channels();
        Ok(ClapFeatures {
            values: mel.repeat(channels),
            channels,
            frames,
            mels,
            // fusion: the one clip of the batch is marked longer.
            is_longer: self.config.truncation == Truncation::Fusion,
        })
    }

    /// `samples` (at most `max_samples`) filled to `max_samples`.
    fn padded(&self, samples: &[f32]) -> Vec<f32> {
        let max = self.max_samples;
        let mut waveform = match self.config.padding {
            Padding::RepeatPad => samples.repeat(max / samples.len()),
            Padding::Repeat => {
                let mut w = samples.repeat(max / samples.len() + 1);
                w.truncate(max);
                w
            }
            Padding::Pad => samples.to_vec(),
        };
        waveform.resize(max, 0.0);
        waveform
    }

    /// Log-mel spectrogram in dB, `[frames][mels]` row-major, and its frame
    /// count: `10 log10(max(filters · |STFT|², 1e-10))`, computed in f64.
    fn log_mel(&self, waveform: &[f32]) -> (Vec<f32>, usize) {
        let samples: Vec<f64> = waveform.iter().map(|&s| f64::from(s)).collect();
        let frames = self.stft.frame_count(samples.len());
        let mels = self.config.feature_size;
        let mut out = vec![0f32; frames * mels];
        self.stft.for_each_frame(&samples, frames, |frame, power| {
            for (m, filter) in self.filters.iter().enumerate() {
                let energy = mel_energy(filter, power).max(1e-10);
                out[frame * mels + m] = (10.0 * energy.log10()) as f32;
            }
        });
        (out, frames)
    }

    /// `fusion` of audio longer than `max_length_s`: the whole clip's mel
    /// shrunk to one chunk's frames, then three chunks.
    fn fusion_of_long(&self, samples: &[f32]) -> Result<ClapFeatures, PreprocessError> {
        let mels = self.config.feature_size;
        let (mel, total) = self.log_mel(samples);
        let chunk = self.max_samples / self.config.hop_length + 1;
        if chunk >= total {
            // Longer by less than a hop: transformers uses the whole clip
            // four times (and marks the batch of one as longer anyway).
            return Ok(ClapFeatures {
                values: mel.repeat(4),
                channels: 4,
                frames: total,
                mels,
                is_longer: true,
            });
        }
        if mels != FUSION_SHRINK_MELS {
            return Err(PreprocessError::Input(format!(
                "fusion of audio longer than max_length_s needs feature_size \
                 {FUSION_SHRINK_MELS} (transformers shrinks to 64 mel bins); this extractor has {mels}"
            )));
        }
        let mut values = bilinear_resize(&mel, total, mels, chunk, FUSION_SHRINK_MELS);
        for start in fusion_chunk_starts(total - chunk + 1) {
            values.extend_from_slice(&mel[start * mels..(start + chunk) * mels]);
        }
        Ok(ClapFeatures {
            values,
            channels: 4,
            frames: chunk,
            mels,
            is_longer: true,
        })
    }
}

/// The three chunk starts for `starts` possible ones: transformers splits
/// `0..starts` into three ranges as `np.array_split` does (an empty range
/// becomes `[0]`) and draws one start from each; here each range's middle
/// element (`range[len / 2]`).
pub fn fusion_chunk_starts(starts: usize) -> [usize; 3] {
    let (base, extra) = (starts / 3, starts % 3);
    let mut begin = 0;
    let mut picks = [0; 3];
    for (k, pick) in picks.iter_mut().enumerate() {
        let len = base + usize::from(k < extra);
        *pick = if len == 0 { 0 } else { begin + len / 2 };
        begin += len;
    }
    picks
}

/// torch's `interpolate(mode="bilinear", align_corners=False)` of a
/// `[rows][cols]` f32 image, with its f32 arithmetic.
fn bilinear_resize(
    x: &[f32],
    rows: usize,
    cols: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    let row_taps = linear_taps(rows, out_rows);
    let col_taps = linear_taps(cols, out_cols);
    let mut out = Vec::with_capacity(out_rows * out_cols);
    for &(r0, r1, wr0, wr1) in &row_taps {
        for &(c0, c1, wc0, wc1) in &col_taps {
            let top = x[r0 * cols + c0] * wc0 + x[r0 * cols + c1] * wc1;
            let bottom = x[r1 * cols + c0] * wc0 + x[r1 * cols + c1] * wc1;
            out.push(top * wr0 + bottom * wr1);
        }
    }
    out
}

/// `(index0, index1, weight0, weight1)` for each output position of a
/// linear resize without corner alignment, as torch computes them in f32.
fn linear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let source = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (source.floor() as usize).min(input - 1);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            let w1 = (source - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - w1, w1)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunk_starts_are_the_middles_of_numpys_three_ranges() {
        // array_split(range(10), 3) = [0..4], [4..7], [7..10]
        assert_eq!(fusion_chunk_starts(10), [2, 5, 8]);
        // [0], [1], []: the empty range becomes [0]
        assert_eq!(fusion_chunk_starts(2), [0, 1, 0]);
        assert_eq!(fusion_chunk_starts(1), [0, 0, 0]);
    }

    #[test]
    fn bilinear_resize_to_the_same_size_is_the_identity() {
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.7 - 3.0).collect();
        assert_eq!(bilinear_resize(&x, 3, 4, 3, 4), x);
    }
}
