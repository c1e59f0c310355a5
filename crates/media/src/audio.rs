//! Audio files to mono f32 samples, and resampling to a model's rate. WAV
//! (PCM 8/16/24/32-bit integer or 32-bit float, any rate, any channel
//! count) is read with `hound`; FLAC, MP3, Ogg/Vorbis and AAC in MP4/M4A
//! with symphonia (`compressed_audio`).

use crate::MediaError;
use crate::PreprocessError;
use std::path::Path;

/// Longer recordings are refused: no skill here streams audio, and an hour
/// at 48 kHz is already 700 MB of f32 before any model runs.
pub const MAX_AUDIO_SECONDS: u64 = 3600;

/// MP4 files are read into memory to check their tables (`mp4_guard`):
/// larger ones are refused (an hour of AAC at 256 kb/s is 115 MB).
pub const MAX_MP4_FILE_BYTES: u64 = 1 << 30;

/// Mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples in [-1, 1] (integer PCM divided by 2^(bits-1), as
    /// soundfile/librosa read it).
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

/// Reads an audio file (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC, told apart by
/// their content) and mixes its channels down to mono (their mean).
pub fn read_audio(path: &Path) -> Result<Audio, MediaError> {
    use std::io::{Read, Seek};
    let mut magic = [0u8; 12];
    let mut file = std::fs::File::open(path)
        .map_err(|e| MediaError::new(path, format!("cannot open: {e}")))?;
    // The decoder reads the file from its start again.
    let read = file
        .read(&mut magic)
        .and_then(|read| file.rewind().map(|()| read))
        .map_err(|e| MediaError::new(path, format!("cannot read: {e}")))?;
    if is_wav(&magic[..read]) {
        return read_wav(path);
    }
    let extension = path.extension().and_then(|e| e.to_str());
    if crate::mp4_guard::looks_like_mp4(&magic[..read]) {
        // Its tables are checked in memory before the demuxer reads them.
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_MP4_FILE_BYTES {
            return Err(MediaError::new(
                path,
                format!("the file is {size} bytes; at most {MAX_MP4_FILE_BYTES} bytes of MP4 are accepted"),
            ));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| MediaError::new(path, format!("cannot read: {e}")))?;
        return decode_owned(bytes).map_err(|why| MediaError::new(path, why));
    }
    crate::compressed_audio::decode(Box::new(file), extension)
        .map_err(|why| MediaError::new(path, why))
}

/// Decodes audio bytes (an upload) as [`read_audio`] reads a file.
pub fn decode_audio(bytes: &[u8]) -> Result<Audio, String> {
    if is_wav(bytes) {
        return decode_wav(bytes);
    }
    // The compressed decoder reads an owned buffer.
    decode_owned(bytes.to_vec())
}

/// Compressed audio in memory (MP4's tables checked first), decoded
/// without another copy.
fn decode_owned(bytes: Vec<u8>) -> Result<Audio, String> {
    if bytes.is_empty() {
        return Err("the audio file is empty".to_owned());
    }
    if crate::mp4_guard::looks_like_mp4(&bytes) {
        crate::mp4_guard::check(&bytes)?;
    }
    crate::compressed_audio::decode(Box::new(std::io::Cursor::new(bytes)), None)
}

/// A RIFF (or RIFX, RF64) container of WAVE data.
fn is_wav(head: &[u8]) -> bool {
    head.len() >= 12 && matches!(&head[..4], b"RIFF" | b"RIFX" | b"RF64") && &head[8..12] == b"WAVE"
}

/// Reads a WAV file and mixes its channels down to mono (their mean).
pub fn read_wav(path: &Path) -> Result<Audio, MediaError> {
    let file = std::fs::File::open(path)
        .map_err(|e| MediaError::new(path, format!("cannot open: {e}")))?;
    let reader = hound::WavReader::new(std::io::BufReader::new(file))
        .map_err(|e| MediaError::new(path, format!("not a readable WAV file: {e}")))?;
    wav_samples(reader).map_err(|why| MediaError::new(path, why))
}

/// Decodes WAV bytes (an upload) as [`read_wav`] reads a file; the error
/// says why, for the caller to put beside the input's name.
pub fn decode_wav(bytes: &[u8]) -> Result<Audio, String> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable WAV file: {e}"))?;
    wav_samples(reader)
}

fn wav_samples<R: std::io::Read>(reader: hound::WavReader<R>) -> Result<Audio, String> {
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 || spec.sample_rate == 0 {
        return Err("the WAV header has no channels or a zero sample rate".to_owned());
    }
    let frames = u64::from(reader.duration());
    if frames == 0 {
        return Err("the WAV file holds no samples".to_owned());
    }
    if frames > MAX_AUDIO_SECONDS * u64::from(spec.sample_rate) {
        return Err(format!(
            "the recording is {} s long; at most {MAX_AUDIO_SECONDS} s is accepted",
            frames / u64::from(spec.sample_rate)
        ));
    }
    // Frames are mixed down to mono as they are read: a stereo hour is
    // never held interleaved.
    let mut samples: Vec<f32> = Vec::new();
    let mut frame_sum = 0f32;
    let mut in_frame = 0;
    let mut push = |v: f32| -> Result<(), String> {
        // NaN or infinite samples would flow through every model as NaN
        // features and come out as confident-looking garbage.
        if !v.is_finite() {
            return Err(format!(
                "the WAV file holds a non-finite sample ({v}); it is not usable audio"
            ));
        }
        frame_sum += v;
        in_frame += 1;
        if in_frame == channels {
            samples.push(if channels == 1 {
                frame_sum
            } else {
                frame_sum / channels as f32
            });
            frame_sum = 0.0;
            in_frame = 0;
        }
        Ok(())
    };
    match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => {
            for sample in reader.into_samples::<f32>() {
                push(sample.map_err(|e| format!("corrupt WAV data: {e}"))?)?;
            }
        }
        hound::SampleFormat::Int if (8..=32).contains(&spec.bits_per_sample) => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            for sample in reader.into_samples::<i32>() {
                let v = sample.map_err(|e| format!("corrupt WAV data: {e}"))?;
                push((f64::from(v) * scale) as f32)?;
            }
        }
        format => {
            return Err(format!(
                "unsupported WAV sample format: {format:?} with {} bits",
                spec.bits_per_sample
            ))
        }
    }
    if samples.is_empty() {
        return Err("the WAV file holds no complete frame".to_owned());
    }
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Zero crossings of the interpolation filter on each side: long enough
/// that the pass band is flat and the stop band below -80 dB.
const FILTER_ZEROS: f64 = 32.0;
/// Cut-off relative to the lower Nyquist frequency (room for the
/// transition band).
const ROLLOFF: f64 = 0.945;
/// Kaiser window shape.
const KAISER_BETA: f64 = 12.0;

/// Resamples `audio` to `rate` by band-limited (Kaiser-windowed sinc)
/// interpolation: output sample `k` is the input signal at time
/// `k / rate`, so the result has `ceil(len * rate / audio.rate)` samples and
/// no delay. Beyond the ends the signal is taken as silence.
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio, PreprocessError> {
    if rate == 0 {
        return Err(PreprocessError::Input(
            "the target sample rate is zero".to_owned(),
        ));
    }
    if audio.sample_rate == rate {
        return Ok(audio.clone());
    }
    let (from, to) = (f64::from(audio.sample_rate), f64::from(rate));
    let input = &audio.samples;
    let wanted =
        (input.len() as u64 * u64::from(rate)).div_ceil(u64::from(audio.sample_rate)) as usize;
    // Below the lower of the two Nyquist frequencies, in cycles per input sample.
    let cutoff = ROLLOFF * (to / from).min(1.0);
    let half_width = FILTER_ZEROS / cutoff;
    let norm = bessel_i0(KAISER_BETA);
    let samples = (0..wanted)
        .map(|k| {
            let center = k as f64 * from / to;
            let first = (center - half_width).ceil().max(0.0) as usize;
            let last = ((center + half_width).floor() as usize).min(input.len() - 1);
            let mut acc = 0f64;
            for (n, &x) in input.iter().enumerate().take(last + 1).skip(first) {
                let t = n as f64 - center;
                let r = t / half_width;
                let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / norm;
                let arg = std::f64::consts::PI * cutoff * t;
                let sinc = if arg.abs() < 1e-12 {
                    1.0
                } else {
                    arg.sin() / arg
                };
                acc += f64::from(x) * cutoff * sinc * window;
            }
            acc as f32
        })
        .collect();
    Ok(Audio {
        samples,
        sample_rate: rate,
    })
}

/// The modified Bessel function of the first kind, order 0 (power series;
/// converges quickly for the arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, half) = (1.0, 1.0, x / 2.0);
    for k in 1..64 {
        term *= half / k as f64;
        let add = term * term;
        sum += add;
        if add < sum * 1e-17 {
            break;
        }
    }
    sum
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
        for (from, to) in [
            (44_100, 16_000),
            (8_000, 16_000),
            (48_000, 16_000),
            (22_050, 16_000),
        ] {
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
