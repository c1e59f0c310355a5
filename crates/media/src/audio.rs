//! Audio files to mono f32 samples, and resampling to a model's rate. WAV
//! (PCM 8/16/24/32-bit integer or 32-bit float, any rate, any channel
//! count) is read with `hound`; FLAC, MP3, Ogg/Vorbis and AAC in MP4/M4A
//! with symphonia (`compressed_audio`).

use crate::audio_stream::BlockSink;
use crate::MediaError;
use crate::PreprocessError;
use std::path::Path;

/// Longer recordings are refused. Whisper's long-form decoding streams a
/// file, but the other paths read a recording into memory, where an hour
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
    crate::audio_stream::AudioFile {
        path: path.to_path_buf(),
    }
    .read()
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
    crate::audio_stream::collect_stream(|sink| crate::audio_stream::stream_bytes_owned(bytes, sink))
}

/// A RIFF (or RIFX, RF64) container of WAVE data.
pub(crate) fn is_wav(head: &[u8]) -> bool {
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
    crate::audio_stream::collect_stream(|sink| wav_stream(reader, sink))
}

/// Samples per block handed to a sink.
const BLOCK: usize = 1 << 14;

/// Streams a WAV reader's frames, mixed down to mono (their mean) as they
/// are read, to `sink` in blocks.
pub(crate) fn wav_stream<R: std::io::Read>(
    reader: hound::WavReader<R>,
    sink: &mut BlockSink<'_>,
) -> Result<(), String> {
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
    let rate = spec.sample_rate;
    let mut block: Vec<f32> = Vec::with_capacity(BLOCK);
    let mut any = false;
    let mut frame_sum = 0f32;
    let mut in_frame = 0;
    let mut push = |v: f32, sink: &mut BlockSink<'_>| {
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
            block.push(if channels == 1 {
                frame_sum
            } else {
                frame_sum / channels as f32
            });
            frame_sum = 0.0;
            in_frame = 0;
            if block.len() == BLOCK {
                any = true;
                sink(rate, &block)?;
                block.clear();
            }
        }
        Ok(())
    };
    match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => {
            for sample in reader.into_samples::<f32>() {
                push(sample.map_err(|e| format!("corrupt WAV data: {e}"))?, sink)?;
            }
        }
        hound::SampleFormat::Int if (8..=32).contains(&spec.bits_per_sample) => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            for sample in reader.into_samples::<i32>() {
                let v = sample.map_err(|e| format!("corrupt WAV data: {e}"))?;
                push((f64::from(v) * scale) as f32, sink)?;
            }
        }
        format => {
            return Err(format!(
                "unsupported WAV sample format: {format:?} with {} bits",
                spec.bits_per_sample
            ))
        }
    }
    if !block.is_empty() {
        any = true;
        sink(rate, &block)?;
    }
    if !any {
        return Err("the WAV file holds no complete frame".to_owned());
    }
    Ok(())
}

/// Zero crossings of the interpolation filter on each side: long enough
/// that the pass band is flat and the stop band below -80 dB.
pub(crate) const FILTER_ZEROS: f64 = 32.0;
/// Cut-off relative to the lower Nyquist frequency (room for the
/// transition band).
pub(crate) const ROLLOFF: f64 = 0.945;
/// Kaiser window shape.
pub(crate) const KAISER_BETA: f64 = 12.0;

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
    if audio.sample_rate == 0 || audio.samples.is_empty() {
        return Err(PreprocessError::Input(
            "the audio holds no samples at a known rate".to_owned(),
        ));
    }
    let samples =
        crate::audio_stream::SincFilter::new(audio.sample_rate, rate)?.whole(&audio.samples);
    Ok(Audio {
        samples,
        sample_rate: rate,
    })
}

/// The modified Bessel function of the first kind, order 0 (power series;
/// converges quickly for the arguments a Kaiser window uses).
pub(crate) fn bessel_i0(x: f64) -> f64 {
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
