//! WAV files (PCM 8/16/24/32-bit integer or 32-bit float, any rate, any
//! channel count) to mono f32 samples, and resampling to a model's rate.

use super::MediaError;
use rubato::{FftFixedInOut, Resampler};
use std::path::Path;

/// Longer recordings are refused: no skill here streams audio, and an hour
/// at 48 kHz is already 700 MB of f32 before any model runs.
pub const MAX_AUDIO_SECONDS: u64 = 3600;

/// Mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples in [-1, 1] (integer PCM divided by 2^(bits-1), as
    /// soundfile/librosa read it).
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

/// Reads a WAV file and mixes its channels down to mono (their mean).
pub fn read_wav(path: &Path) -> Result<Audio, MediaError> {
    let reader = hound::WavReader::open(path)
        .map_err(|e| MediaError::new(path, format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 || spec.sample_rate == 0 {
        return Err(MediaError::new(
            path,
            "the WAV header has no channels or a zero sample rate",
        ));
    }
    let frames = u64::from(reader.duration());
    if frames == 0 {
        return Err(MediaError::new(path, "the WAV file holds no samples"));
    }
    if frames > MAX_AUDIO_SECONDS * u64::from(spec.sample_rate) {
        return Err(MediaError::new(
            path,
            format!(
                "the recording is {} s long; at most {MAX_AUDIO_SECONDS} s is accepted",
                frames / u64::from(spec.sample_rate)
            ),
        ));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| MediaError::new(path, format!("corrupt WAV data: {e}")))?,
        hound::SampleFormat::Int if (8..=32).contains(&spec.bits_per_sample) => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(|e| MediaError::new(path, format!("corrupt WAV data: {e}")))?
        }
        format => {
            return Err(MediaError::new(
                path,
                format!(
                    "unsupported WAV sample format: {format:?} with {} bits",
                    spec.bits_per_sample
                ),
            ))
        }
    };
    if interleaved.len() < channels {
        return Err(MediaError::new(
            path,
            "the WAV file holds no complete frame",
        ));
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Resamples `audio` to `rate` with a band-limited FFT resampler; the
/// result has `ceil(len * rate / audio.rate)` samples, aligned with the
/// input (the resampler's delay removed).
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio, String> {
    if audio.sample_rate == rate {
        return Ok(audio.clone());
    }
    let (from, to) = (audio.sample_rate as usize, rate as usize);
    let wanted = (audio.samples.len() * to).div_ceil(from);
    let mut resampler = FftFixedInOut::<f32>::new(from, to, 1024, 1).map_err(|e| e.to_string())?;
    let delay = resampler.output_delay();
    let mut out: Vec<f32> = Vec::with_capacity(wanted + delay + 2048);
    let mut rest: &[f32] = &audio.samples;
    while out.len() < wanted + delay {
        let need = resampler.input_frames_next();
        let chunk = if rest.len() >= need {
            let (head, tail) = rest.split_at(need);
            rest = tail;
            resampler.process(&[head], None)
        } else {
            // The last partial chunk, then zeros to flush the delay line.
            let head = rest;
            rest = &[];
            resampler.process_partial(Some(&[head]), None)
        }
        .map_err(|e| e.to_string())?;
        out.extend_from_slice(&chunk[0]);
    }
    out.drain(..delay);
    out.truncate(wanted);
    Ok(Audio {
        samples: out,
        sample_rate: rate,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sine(rate: u32, seconds: f64, freq: f64) -> Vec<f32> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    #[test]
    fn resampling_a_sine_gives_the_sine_at_the_new_rate() {
        for (from, to) in [(44_100, 16_000), (8_000, 16_000), (48_000, 16_000)] {
            let audio = Audio {
                samples: sine(from, 0.5, 440.0),
                sample_rate: from,
            };
            let out = resample(&audio, to).unwrap();
            let want = sine(to, 0.5, 440.0);
            assert_eq!(out.samples.len(), want.len(), "{from} -> {to}");
            // The edges see the zero padding; the middle must be the sine.
            let n = want.len();
            let err = out.samples[n / 10..n * 9 / 10]
                .iter()
                .zip(&want[n / 10..n * 9 / 10])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 2e-3, "{from} -> {to}: max error {err}");
        }
    }
}
