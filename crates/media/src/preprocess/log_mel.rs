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

    /// The recording's raw log-mel frames (`log10(max(mel, 1e-10))`, before
    /// the floor and scaling), computed as blocks of samples arrive: see
    /// [`MelFrames`].
    pub fn frames_of_stream(&self) -> MelFrames<'_> {
        MelFrames {
            front: self,
            buffer: Vec::new(),
            base: 0,
            received: 0,
            next: 0,
        }
    }

    /// `(v.max(floor) + 4) / 4`: a raw frame value as `input_features`
    /// holds it, `floor` being the recording's maximum less 8.
    pub fn scale(value: f32, floor: f32) -> f32 {
        (value.max(floor) + 4.0) / 4.0
    }
}

/// A recording's log-mel frames as transformers computes them for long
/// audio (`WhisperFeatureExtractor(truncation=False, padding="longest")`):
/// one centred STFT over the whole recording (reflect padding at both
/// ends, no zero padding to the window), the last frame dropped. Frames
/// come out as soon as their samples have arrived; only the samples the
/// next frames need are kept, so an hour of audio never holds more than a
/// block of samples here.
pub struct MelFrames<'a> {
    front: &'a LogMel,
    /// Samples from index `base` on.
    buffer: Vec<f32>,
    base: usize,
    received: usize,
    /// The next frame to compute.
    next: usize,
}

impl std::fmt::Debug for MelFrames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrames")
            .field("received", &self.received)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl MelFrames<'_> {
    /// Adds samples; calls `each(frame, raw)` (`raw`: one value per mel
    /// bin) for every frame whose samples have all arrived.
    pub fn push(&mut self, block: &[f32], mut each: impl FnMut(usize, &[f32])) {
        self.buffer.extend_from_slice(block);
        self.received += block.len();
        let (hop, pad) = (self.front.config.hop_length, self.front.config.n_fft / 2);
        // Frame f reads samples up to f × hop + pad - 1, and at the start
        // the reflection reads sample `pad`.
        // (And the frame is not the one transformers drops: frame f is
        // kept when (f + 1) × hop samples exist.)
        let mut ready = self.next;
        while ready * hop + pad < self.received && (ready + 1) * hop <= self.received {
            ready += 1;
        }
        self.compute(ready, None, &mut each);
        let keep_from = (self.next * hop).saturating_sub(pad);
        if keep_from > self.base {
            let drop = (keep_from - self.base).min(self.buffer.len());
            self.buffer.drain(..drop);
            self.base += drop;
        }
    }

    /// The recording has ended: calls `each` for the remaining frames and
    /// returns how many frames it has (`samples / hop`). A recording no
    /// longer than half an FFT has no frames (reflect padding needs more).
    pub fn finish(mut self, mut each: impl FnMut(usize, &[f32])) -> usize {
        let total = self.received / self.front.config.hop_length;
        if self.received <= self.front.config.n_fft / 2 {
            return 0;
        }
        self.compute(total, Some(self.received), &mut each);
        total
    }

    /// Frames `next .. until`; `len` is the recording's length once known
    /// (for the reflection at its end).
    fn compute(&mut self, until: usize, len: Option<usize>, each: &mut impl FnMut(usize, &[f32])) {
        if until <= self.next {
            return;
        }
        let pad = self.front.config.n_fft / 2;
        let (buffer, base) = (&self.buffer, self.base);
        let n = len.unwrap_or(usize::MAX);
        // Index `j` of numpy's reflect-padded signal.
        let padded = |j: usize| -> f64 {
            let original = if j < pad {
                pad - j
            } else if j - pad < n {
                j - pad
            } else {
                (2 * n + pad).saturating_sub(j + 2)
            };
            original
                .checked_sub(base)
                .and_then(|i| buffer.get(i))
                .map_or(0.0, |&x| f64::from(x))
        };
        let mut raw = vec![0f32; self.front.config.feature_size];
        self.front
            .stft
            .power_frames(self.next..until, padded, |frame, power| {
                for (r, filter) in raw.iter_mut().zip(&self.front.filters) {
                    *r = mel_energy(filter, power).max(1e-10).log10() as f32;
                }
                each(frame, &raw);
            });
        self.next = until;
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

    /// Frames streamed in blocks of any size equal the whole recording's
    /// frames computed at once (the padded-STFT path).
    #[test]
    fn streamed_frames_equal_the_whole_recordings_frames() {
        let front = whisper_front();
        let samples: Vec<f32> = (0u64..16_000 * 35 + 77)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() * (t * 0.7).cos()
                    + 0.05 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
            })
            .collect();
        let frames = samples.len() / 160;
        let whole: Vec<f64> = samples.iter().map(|&s| f64::from(s)).collect();
        let mut all = vec![0f32; 80 * frames];
        front.stft.for_each_frame(&whole, frames, |frame, power| {
            for (m, filter) in front.filters.iter().enumerate() {
                all[m * frames + frame] = mel_energy(filter, power).max(1e-10).log10() as f32;
            }
        });
        for block in [1usize, 333, 16_000, 1 << 20] {
            let mut streamed = vec![0f32; 80 * frames];
            let mut seen = 0;
            let mut put = |frame: usize, raw: &[f32]| {
                assert_eq!(frame, seen, "frames in order");
                seen += 1;
                for (m, &v) in raw.iter().enumerate() {
                    streamed[m * frames + frame] = v;
                }
            };
            let mut stream = front.frames_of_stream();
            for chunk in samples.chunks(block) {
                stream.push(chunk, &mut put);
            }
            assert_eq!(stream.finish(&mut put), frames);
            assert_eq!(streamed, all, "blocks of {block}");
        }
    }
}
