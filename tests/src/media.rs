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
