//! `WhisperFeatureExtractor`: log-mel spectrogram of audio zero-padded to
//! the model's window (30 s for every released Whisper), computed with the
//! precisions `transformers`' numpy path uses (FFT in f64, spectrum stored
//! as complex64, power and mel projection in f64, result f32).

use super::stft::{mel_energy, mel_filters, MelFilter, MelScale, PowerStft};
use crate::PreprocessError;
use serde::Deserialize;

/// The keys of `preprocessor_config.json` that matter here.
#[derive(Debug, Clone, Deserialize)]
pub struct LogMelConfig {
    /// Mel bins.
    pub feature_size: usize,
    /// Rate the model expects.
    pub sampling_rate: u32,
    /// Samples between frames.
    pub hop_length: usize,
    /// FFT size (= frame and window length).
    pub n_fft: usize,
    /// Samples per window: audio is zero-padded to this.
    pub n_samples: usize,
    /// Random noise added before the FFT; only 0 reproduces a reference.
    #[serde(default)]
    pub dither: f64,
}

/// A ready front end: STFT and mel filters.
pub struct LogMel {
    config: LogMelConfig,
    stft: PowerStft,
    // [mel][frequency bin]
    filters: Vec<MelFilter>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// Checks the config and builds the filters.
    pub fn new(config: LogMelConfig) -> Result<Self, PreprocessError> {
        if config.n_fft < 4 || config.hop_length == 0 || config.feature_size == 0 {
            return Err(PreprocessError::Config(format!(
                "preprocessor_config.json: unusable n_fft {} / hop_length {} / feature_size {}",
                config.n_fft, config.hop_length, config.feature_size
            )));
        }
        if config.n_samples < config.n_fft {
            return Err(PreprocessError::Config(format!(
                "preprocessor_config.json: n_samples {} is shorter than n_fft {}",
                config.n_samples, config.n_fft
            )));
        }
        if config.dither != 0.0 {
            tracing::warn!(
                dither = config.dither,
                "the feature extractor asks for dithering; features are computed without it"
            );
        }
        let stft = PowerStft::new(config.n_fft, config.hop_length);
        let filters = mel_filters(
            stft.bins(),
            config.feature_size,
            0.0,
            8000.0,
            f64::from(config.sampling_rate),
            MelScale::Slaney,
            true,
        );
        Ok(Self {
            config,
            stft,
            filters,
        })
    }

    /// The config in use.
    pub fn config(&self) -> &LogMelConfig {
        &self.config
    }

    /// Frames per window (3000 for Whisper).
    pub fn frames(&self) -> usize {
        self.config.n_samples / self.config.hop_length
    }

    /// `input_features` [feature_size × frames], row-major, for at most
    /// `n_samples` samples at the model's rate.
    pub fn features(&self, samples: &[f32]) -> Result<Vec<f32>, PreprocessError> {
        let cfg = &self.config;
        if samples.len() > cfg.n_samples {
            return Err(PreprocessError::Input(format!(
                "the audio is {:.1} s long; this model takes at most {:.1} s per request",
                samples.len() as f64 / f64::from(cfg.sampling_rate),
                cfg.n_samples as f64 / f64::from(cfg.sampling_rate)
            )));
        }
        let mut padded = vec![0f64; cfg.n_samples];
        for (p, &s) in padded.iter_mut().zip(samples) {
            *p = f64::from(s);
        }
        // transformers drops the last frame.
        let frames = self.stft.frame_count(cfg.n_samples) - 1;
        let mels = cfg.feature_size;
        let mut out = vec![0f32; mels * frames];
        self.stft.for_each_frame(&padded, frames, |frame, power| {
            for (m, filter) in self.filters.iter().enumerate() {
                out[m * frames + frame] = mel_energy(filter, power).max(1e-10).log10() as f32;
            }
        });
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - 8.0;
        for v in &mut out {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        Ok(out)
    }

    /// The front end over a recording longer than one window, as
    /// `WhisperFeatureExtractor(truncation=False, padding="longest")`
    /// computes it: one centred STFT over the whole recording (no zero
    /// padding to the window), the last frame dropped, and the `max - 8`
    /// floor taken over all of it. This pass finds that maximum; the
    /// features themselves are computed a window at a time by
    /// [`LongFormFeatures::window`], so an hour of audio never holds more
    /// than one window of features.
    pub fn long_form<'a>(
        &'a self,
        samples: &'a [f32],
    ) -> Result<LongFormFeatures<'a>, PreprocessError> {
        let cfg = &self.config;
        if samples.len() <= cfg.n_fft / 2 {
            return Err(PreprocessError::Input(format!(
                "the audio is too short: {} samples",
                samples.len()
            )));
        }
        // `1 + len / hop` frames, less the last.
        let frames = samples.len() / cfg.hop_length;
        let mut max = f32::NEG_INFINITY;
        self.stft.for_frames_in(samples, 0, frames, |_, power| {
            for filter in &self.filters {
                max = max.max(mel_energy(filter, power).max(1e-10).log10() as f32);
            }
        });
        Ok(LongFormFeatures {
            front: self,
            samples,
            frames,
            floor: max - 8.0,
        })
    }
}

/// A recording's log-mel features, computed a window at a time (see
/// [`LogMel::long_form`]).
#[derive(Debug)]
pub struct LongFormFeatures<'a> {
    front: &'a LogMel,
    samples: &'a [f32],
    frames: usize,
    floor: f32,
}

impl LongFormFeatures<'_> {
    /// Frames of the whole recording (`samples / hop`).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// `input_features` [feature_size × `width`] for frames `start ..
    /// start + count` of the recording (clamped to its end), zero past
    /// them, as Whisper's long-form `generate` cuts and pads each segment.
    pub fn window(&self, start: usize, count: usize, width: usize) -> Vec<f32> {
        let count = count.min(width).min(self.frames.saturating_sub(start));
        let mels = self.front.config.feature_size;
        let mut out = vec![0f32; mels * width];
        self.front
            .stft
            .for_frames_in(self.samples, start, count, |frame, power| {
                let column = frame - start;
                for (m, filter) in self.front.filters.iter().enumerate() {
                    let v = mel_energy(filter, power).max(1e-10).log10() as f32;
                    out[m * width + column] = (v.max(self.floor) + 4.0) / 4.0;
                }
            });
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn whisper_front() -> LogMel {
        LogMel::new(LogMelConfig {
            feature_size: 80,
            sampling_rate: 16_000,
            hop_length: 160,
            n_fft: 400,
            n_samples: 480_000,
            dither: 0.0,
        })
        .unwrap()
    }

    /// A window of the long-form features equals the same columns of the
    /// whole recording's features computed at once (the padded-STFT path),
    /// floor included, and past the recording's end it is zero.
    #[test]
    fn long_form_windows_equal_the_whole_recordings_features() {
        let front = whisper_front();
        let samples: Vec<f32> = (0u64..16_000 * 35 + 77)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() * (t * 0.7).cos()
                    + 0.05 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
            })
            .collect();
        let long = front.long_form(&samples).unwrap();
        let frames = long.frames();
        assert_eq!(frames, samples.len() / 160);
        // All frames at once, as transformers computes them.
        let whole: Vec<f64> = samples.iter().map(|&s| f64::from(s)).collect();
        let mut all = vec![0f32; 80 * frames];
        front.stft.for_each_frame(&whole, frames, |frame, power| {
            for (m, filter) in front.filters.iter().enumerate() {
                all[m * frames + frame] = mel_energy(filter, power).max(1e-10).log10() as f32;
            }
        });
        let floor = all.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
        let (start, width) = (1234, 3000);
        let window = long.window(start, width, width);
        for m in 0..80 {
            for c in 0..width {
                let got = window[m * width + c];
                let want = if start + c < frames {
                    (all[m * frames + start + c].max(floor) + 4.0) / 4.0
                } else {
                    0.0
                };
                assert_eq!(got, want, "mel {m}, column {c}");
            }
        }
    }
}
