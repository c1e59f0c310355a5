//! `WhisperFeatureExtractor`: log-mel spectrogram of audio zero-padded to
//! the model's window (30 s for every released Whisper), computed with the
//! precisions `transformers`' numpy path uses (FFT in f64, spectrum stored
//! as complex64, power and mel projection in f64, result f32).

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::Deserialize;
use std::sync::Arc;

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

/// A ready front end: window, mel filters and FFT plan.
pub struct LogMel {
    config: LogMelConfig,
    window: Vec<f64>,
    // [mel][frequency bin]
    filters: Vec<Vec<f64>>,
    fft: Arc<dyn Fft<f64>>,
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
    pub fn new(config: LogMelConfig) -> Result<Self, String> {
        if config.n_fft < 4 || config.hop_length == 0 || config.feature_size == 0 {
            return Err(format!(
                "preprocessor_config.json: unusable n_fft {} / hop_length {} / feature_size {}",
                config.n_fft, config.hop_length, config.feature_size
            ));
        }
        if config.n_samples < config.n_fft {
            return Err(format!(
                "preprocessor_config.json: n_samples {} is shorter than n_fft {}",
                config.n_samples, config.n_fft
            ));
        }
        if config.dither != 0.0 {
            tracing::warn!(
                dither = config.dither,
                "the feature extractor asks for dithering; features are computed without it"
            );
        }
        let n = config.n_fft;
        // Periodic Hann: numpy's hanning(n + 1)[:-1].
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let filters = slaney_mel_filters(
            n / 2 + 1,
            config.feature_size,
            0.0,
            8000.0,
            f64::from(config.sampling_rate),
        );
        let fft = FftPlanner::new().plan_fft_forward(n);
        Ok(Self {
            config,
            window,
            filters,
            fft,
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
    pub fn features(&self, samples: &[f32]) -> Result<Vec<f32>, String> {
        let cfg = &self.config;
        if samples.len() > cfg.n_samples {
            return Err(format!(
                "the audio is {:.1} s long; this model takes at most {:.1} s per request",
                samples.len() as f64 / f64::from(cfg.sampling_rate),
                cfg.n_samples as f64 / f64::from(cfg.sampling_rate)
            ));
        }
        let mut padded = vec![0f64; cfg.n_samples];
        for (p, &s) in padded.iter_mut().zip(samples) {
            *p = f64::from(s);
        }
        let waveform = reflect_pad(&padded, cfg.n_fft / 2);
        let bins = cfg.n_fft / 2 + 1;
        let total_frames = 1 + (waveform.len() - cfg.n_fft) / cfg.hop_length;
        // transformers drops the last frame.
        let frames = total_frames - 1;
        let mels = cfg.feature_size;
        let mut out = vec![0f32; mels * frames];
        let mut buffer = vec![Complex::new(0f64, 0f64); cfg.n_fft];
        let mut power = vec![0f64; bins];
        for frame in 0..frames {
            let start = frame * cfg.hop_length;
            for (i, b) in buffer.iter_mut().enumerate() {
                *b = Complex::new(waveform[start + i] * self.window[i], 0.0);
            }
            self.fft.process(&mut buffer);
            for (p, c) in power.iter_mut().zip(&buffer[..bins]) {
                // The spectrum is stored as complex64 before |.|^2.
                let (re, im) = (f64::from(c.re as f32), f64::from(c.im as f32));
                *p = re.hypot(im).powi(2);
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let energy: f64 = filter.iter().zip(&power).map(|(f, p)| f * p).sum();
                out[m * frames + frame] = energy.max(1e-10).log10() as f32;
            }
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - 8.0;
        for v in &mut out {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        Ok(out)
    }
}

/// numpy's `pad(mode="reflect")`: mirrors without repeating the edge.
fn reflect_pad(x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| x[i.min(n - 1)]));
    out.extend_from_slice(x);
    out.extend((0..pad).map(|i| x[n.saturating_sub(2 + i)]));
    out
}

fn hertz_to_mel_slaney(freq: f64) -> f64 {
    let logstep = 27.0 / 6.4f64.ln();
    if freq >= 1000.0 {
        15.0 + (freq / 1000.0).ln() * logstep
    } else {
        3.0 * freq / 200.0
    }
}

fn mel_to_hertz_slaney(mel: f64) -> f64 {
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= 15.0 {
        1000.0 * (logstep * (mel - 15.0)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// `mel_filter_bank(..., norm="slaney", mel_scale="slaney")`, as rows.
pub(crate) fn slaney_mel_filters(
    bins: usize,
    mels: usize,
    min_hz: f64,
    max_hz: f64,
    rate: f64,
) -> Vec<Vec<f64>> {
    let (mel_min, mel_max) = (hertz_to_mel_slaney(min_hz), hertz_to_mel_slaney(max_hz));
    let filter_freqs: Vec<f64> = (0..mels + 2)
        .map(|i| mel_to_hertz_slaney(mel_min + (mel_max - mel_min) * i as f64 / (mels + 1) as f64))
        .collect();
    // numpy's linspace(0, rate // 2, bins).
    let nyquist = (rate / 2.0).floor();
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| nyquist * i as f64 / (bins - 1) as f64)
        .collect();
    (0..mels)
        .map(|m| {
            let enorm = 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
            fft_freqs
                .iter()
                .map(|&f| {
                    let down = (f - filter_freqs[m]) / (filter_freqs[m + 1] - filter_freqs[m]);
                    let up =
                        (filter_freqs[m + 2] - f) / (filter_freqs[m + 2] - filter_freqs[m + 1]);
                    down.min(up).max(0.0) * enorm
                })
                .collect()
        })
        .collect()
}
