//! Media files the tests write: WAV files of any layout.

use std::path::Path;

/// A 16-bit integer PCM layout.
pub fn pcm16(channels: u16, sample_rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Writes `frames` (one sample per channel each, in [-1, 1)) as a WAV file
/// of layout `spec`.
pub fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[Vec<f32>]) {
    let mut writer = hound::WavWriter::create(path, spec).expect("create WAV");
    for frame in frames {
        for &s in frame {
            match spec.sample_format {
                hound::SampleFormat::Float => writer.write_sample(s).expect("sample"),
                hound::SampleFormat::Int => {
                    writer.write_sample((s * 32768.0) as i16).expect("sample");
                }
            }
        }
    }
    writer.finalize().expect("finalize WAV");
}

/// The 16-bit samples of a WAV file, and its rate.
pub fn read_pcm16(path: &Path) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::open(path).expect("open WAV");
    let rate = reader.spec().sample_rate;
    let samples = reader.samples::<i16>().map(|s| s.expect("sample"));
    (samples.collect(), rate)
}

/// Gains (numerator, denominator) of successive copies of a clip in
/// [`long_audio`], as `fixtures/references/make_longform_references.py`
/// applies them.
const LONG_AUDIO_GAINS: [(i64, i64); 4] = [(1, 1), (1, 2), (4, 5), (3, 10)];
/// Silence (samples) after each copy.
const LONG_AUDIO_SILENCE: [usize; 4] = [0, 8_000, 16_000, 3_200];

/// A long recording made of a fixture's 16 kHz clip, exactly as the
/// long-form references' generator builds it: copy `k` of the clip scaled
/// by `LONG_AUDIO_GAINS[k % 4]` (floor division, as Python's `//`) and
/// followed by `LONG_AUDIO_SILENCE[k % 4]` zeros, cut to `seconds`.
pub fn long_audio(clip: &[i16], seconds: usize) -> Vec<i16> {
    assert!(!clip.is_empty(), "the clip is empty");
    let total = seconds * 16_000;
    let mut out = Vec::with_capacity(total + clip.len() + 16_000);
    let mut k = 0;
    while out.len() < total {
        let (num, den) = LONG_AUDIO_GAINS[k % 4];
        out.extend(
            clip.iter()
                .map(|&s| (i64::from(s) * num).div_euclid(den) as i16),
        );
        out.extend(std::iter::repeat_n(0i16, LONG_AUDIO_SILENCE[k % 4]));
        k += 1;
    }
    out.truncate(total);
    out
}

/// Writes [`long_audio`] of the WAV clip `clip` to `to` (16 kHz mono
/// 16-bit).
pub fn write_long_wav(clip: &Path, seconds: usize, to: &Path) {
    let (samples, rate) = read_pcm16(clip);
    assert_eq!(rate, 16_000, "{} is not 16 kHz", clip.display());
    let mut writer = hound::WavWriter::create(to, pcm16(1, 16_000)).expect("create WAV");
    for s in long_audio(&samples, seconds) {
        writer.write_sample(s).expect("sample");
    }
    writer.finalize().expect("finalize WAV");
}
