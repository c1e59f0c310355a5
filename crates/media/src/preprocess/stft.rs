//! What the audio front ends share of transformers' numpy `spectrogram`
//! (`audio_utils.py`): a centred STFT with reflect padding and a periodic
//! Hann window, its power spectrum computed with the precisions numpy uses
//! (FFT in f64, spectrum stored as complex64, |.|² in f64), and mel filter
//! banks.

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// A power-spectrum STFT of one frame size and hop.
pub(crate) struct PowerStft {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn Fft<f64>>,
}

impl PowerStft {
    /// `n_fft` is the frame, window and FFT length (transformers'
    /// `frame_length`, `fft_length` left unset); callers check that it is
    /// at least 2 and `hop` at least 1.
    pub(crate) fn new(n_fft: usize, hop: usize) -> Self {
        // Periodic Hann: numpy's hanning(n + 1)[:-1].
        let window = (0..n_fft)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos())
            .collect();
        Self {
            n_fft,
            hop,
            window,
            fft: FftPlanner::new().plan_fft_forward(n_fft),
        }
    }

    /// Frequency bins per frame (`n_fft / 2 + 1`).
    pub(crate) fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames of the centred STFT of `len` samples:
    /// `1 + (len + 2 * (n_fft / 2) - n_fft) / hop`.
    pub(crate) fn frame_count(&self, len: usize) -> usize {
        1 + (len + 2 * (self.n_fft / 2) - self.n_fft) / self.hop
    }

    /// Calls `each(frame, power)` for the first `frames` frames of the
    /// centred STFT of `samples` (reflect-padded by `n_fft / 2` on both
    /// sides; `samples` must be longer than that), `power` holding
    /// [`Self::bins`] values.
    pub(crate) fn for_each_frame(
        &self,
        samples: &[f64],
        frames: usize,
        each: impl FnMut(usize, &[f64]),
    ) {
        let waveform = reflect_pad(samples, self.n_fft / 2);
        self.power_frames(0..frames, |j| waveform[j], each);
    }

    /// The power spectrum of each frame in `frames`, the padded signal read
    /// through `padded(index)`.
    pub(crate) fn power_frames(
        &self,
        frames: std::ops::Range<usize>,
        padded: impl Fn(usize) -> f64,
        mut each: impl FnMut(usize, &[f64]),
    ) {
        let bins = self.bins();
        let mut buffer = vec![Complex::new(0f64, 0f64); self.n_fft];
        let mut power = vec![0f64; bins];
        for frame in frames {
            let start = frame * self.hop;
            for (i, b) in buffer.iter_mut().enumerate() {
                *b = Complex::new(padded(start + i) * self.window[i], 0.0);
            }
            self.fft.process(&mut buffer);
            for (p, c) in power.iter_mut().zip(&buffer[..bins]) {
                // The spectrum is stored as complex64 before |.|^2.
                let (re, im) = (f64::from(c.re as f32), f64::from(c.im as f32));
                *p = re.hypot(im).powi(2);
            }
            each(frame, &power);
        }
    }
}

/// numpy's `pad(mode="reflect")` for `pad < x.len()`: mirrors without
/// repeating the edge.
fn reflect_pad(x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| x[i.min(n - 1)]));
    out.extend_from_slice(x);
    out.extend((0..pad).map(|i| x[n.saturating_sub(2 + i)]));
    out
}

/// The mel scale of a filter bank (transformers' `mel_scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MelScale {
    /// librosa's default: linear below 1 kHz, logarithmic above.
    Slaney,
    /// `2595 log10(1 + f / 700)` (torchaudio's default).
    Htk,
}

impl MelScale {
    fn mel_of(self, freq: f64) -> f64 {
        match self {
            Self::Htk => 2595.0 * (1.0 + freq / 700.0).log10(),
            Self::Slaney => {
                let logstep = 27.0 / 6.4f64.ln();
                if freq >= 1000.0 {
                    15.0 + (freq / 1000.0).ln() * logstep
                } else {
                    3.0 * freq / 200.0
                }
            }
        }
    }

    fn hertz_of(self, mel: f64) -> f64 {
        match self {
            Self::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
            Self::Slaney => {
                let logstep = 6.4f64.ln() / 27.0;
                if mel >= 15.0 {
                    1000.0 * (logstep * (mel - 15.0)).exp()
                } else {
                    200.0 * mel / 3.0
                }
            }
        }
    }
}

/// One mel filter: its weights over the frequency bins where it is not
/// zero (a triangle covers a few bins; the rest would only add zeros).
#[derive(Debug, Clone)]
pub(crate) struct MelFilter {
    /// First bin with a non-zero weight.
    pub start: usize,
    /// Weights from `start` on.
    pub weights: Vec<f64>,
}

/// transformers' `mel_filter_bank(bins, mels, min_hz, max_hz, rate,
/// norm="slaney" if slaney_norm else None, mel_scale=scale)`, one
/// [`MelFilter`] per mel.
pub(crate) fn mel_filters(
    bins: usize,
    mels: usize,
    min_hz: f64,
    max_hz: f64,
    rate: f64,
    scale: MelScale,
    slaney_norm: bool,
) -> Vec<MelFilter> {
    let (mel_min, mel_max) = (scale.mel_of(min_hz), scale.mel_of(max_hz));
    let filter_freqs: Vec<f64> = (0..mels + 2)
        .map(|i| scale.hertz_of(mel_min + (mel_max - mel_min) * i as f64 / (mels + 1) as f64))
        .collect();
    // numpy's linspace(0, rate // 2, bins).
    let nyquist = (rate / 2.0).floor();
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| nyquist * i as f64 / (bins - 1) as f64)
        .collect();
    (0..mels)
        .map(|m| {
            let enorm = if slaney_norm {
                2.0 / (filter_freqs[m + 2] - filter_freqs[m])
            } else {
                1.0
            };
            let row: Vec<f64> = fft_freqs
                .iter()
                .map(|&f| {
                    let down = (f - filter_freqs[m]) / (filter_freqs[m + 1] - filter_freqs[m]);
                    let up =
                        (filter_freqs[m + 2] - f) / (filter_freqs[m + 2] - filter_freqs[m + 1]);
                    down.min(up).max(0.0) * enorm
                })
                .collect();
            let start = row.iter().position(|&w| w != 0.0).unwrap_or(row.len());
            let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
            MelFilter {
                start,
                weights: row[start..end].to_vec(),
            }
        })
        .collect()
}

/// One mel energy: `filter · power` in f64, in bin order. Skipping the
/// zero weights changes nothing: adding `+0.0` is exact.
pub(crate) fn mel_energy(filter: &MelFilter, power: &[f64]) -> f64 {
    filter
        .weights
        .iter()
        .zip(&power[filter.start..])
        .map(|(f, p)| f * p)
        .sum()
}
