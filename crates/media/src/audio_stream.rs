//! Audio as a stream of mono blocks, read afresh each time it is asked
//! for, so that a long recording can be gone through twice (Whisper's
//! long-form features need the whole recording's maximum before the first
//! window) without ever being held whole: [`AudioSource`], a file on disk
//! ([`AudioFile`]) or samples in memory ([`Audio`]), and
//! [`StreamResampler`], which resamples block by block to the same samples
//! as [`crate::resample`].

use crate::audio::{bessel_i0, is_wav, wav_stream, Audio, KAISER_BETA, MAX_MP4_FILE_BYTES};
use crate::{MediaError, PreprocessError};
use std::path::{Path, PathBuf};

/// Receives decoded mono blocks and their rate; an error stops decoding.
pub type BlockSink<'a> = dyn FnMut(u32, &[f32]) -> Result<(), String> + 'a;

/// Where a sink is told to stop early (not an error of the audio).
const STOP: &str = "\u{0}stop";

/// A recording that can be decoded from its start as often as needed.
pub trait AudioSource: Sync {
    /// Decodes from the start, handing mono blocks (with the stream's
    /// rate) to `sink`; stops at the sink's first error and returns it.
    fn stream(&self, sink: &mut BlockSink<'_>) -> Result<(), String>;

    /// How errors name it (a path, or "the audio").
    fn name(&self) -> String;

    /// The samples and their rate, when they are in memory already (so a
    /// caller that needs them whole can borrow them instead of copying).
    fn in_memory(&self) -> Option<(&[f32], u32)> {
        None
    }
}

impl AudioSource for Audio {
    fn stream(&self, sink: &mut BlockSink<'_>) -> Result<(), String> {
        SampleSlice {
            samples: &self.samples,
            sample_rate: self.sample_rate,
        }
        .stream(sink)
    }

    fn name(&self) -> String {
        "the audio".to_owned()
    }

    fn in_memory(&self) -> Option<(&[f32], u32)> {
        Some((&self.samples, self.sample_rate))
    }
}

/// Samples already in memory, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SampleSlice<'a> {
    /// Mono samples.
    pub samples: &'a [f32],
    /// Samples per second.
    pub sample_rate: u32,
}

impl AudioSource for SampleSlice<'_> {
    fn stream(&self, sink: &mut BlockSink<'_>) -> Result<(), String> {
        if self.samples.is_empty() {
            return Err("the audio holds no samples".to_owned());
        }
        for block in self.samples.chunks(1 << 16) {
            sink(self.sample_rate, block)?;
        }
        Ok(())
    }

    fn name(&self) -> String {
        "the audio".to_owned()
    }

    fn in_memory(&self) -> Option<(&[f32], u32)> {
        Some((self.samples, self.sample_rate))
    }
}

/// An audio file on disk (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC), decoded
/// each time it is streamed.
#[derive(Debug, Clone)]
pub struct AudioFile {
    pub(crate) path: PathBuf,
}

impl AudioFile {
    /// Opens `path` and decodes its first block, so that a file that is not
    /// audio is refused before anything else is done with it.
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        let file = Self {
            path: path.to_path_buf(),
        };
        match file.stream(&mut |_, _| Err(STOP.to_owned())) {
            Err(why) if why != STOP => Err(MediaError::new(path, why)),
            _ => Ok(file),
        }
    }

    /// The whole recording in memory.
    pub fn read(&self) -> Result<Audio, MediaError> {
        collect(self).map_err(|why| MediaError::new(&self.path, why))
    }
}

impl AudioSource for AudioFile {
    fn stream(&self, sink: &mut BlockSink<'_>) -> Result<(), String> {
        use std::io::{Read, Seek};
        let mut magic = [0u8; 12];
        let mut file = std::fs::File::open(&self.path).map_err(|e| format!("cannot open: {e}"))?;
        // The decoder reads the file from its start again.
        let read = file
            .read(&mut magic)
            .and_then(|read| file.rewind().map(|()| read))
            .map_err(|e| format!("cannot read: {e}"))?;
        if is_wav(&magic[..read]) {
            let reader = hound::WavReader::new(std::io::BufReader::new(file))
                .map_err(|e| format!("not a readable WAV file: {e}"))?;
            return wav_stream(reader, sink);
        }
        if crate::mp4_guard::looks_like_mp4(&magic[..read]) {
            // Its tables are checked in memory before the demuxer reads them.
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size > MAX_MP4_FILE_BYTES {
                return Err(format!(
                    "the file is {size} bytes; at most {MAX_MP4_FILE_BYTES} bytes of MP4 are accepted"
                ));
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read: {e}"))?;
            return stream_bytes_owned(bytes, sink);
        }
        let extension = self.path.extension().and_then(|e| e.to_str());
        crate::compressed_audio::stream(Box::new(file), extension, sink)
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Compressed audio in memory (MP4's tables checked first), streamed.
pub(crate) fn stream_bytes_owned(bytes: Vec<u8>, sink: &mut BlockSink<'_>) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the audio file is empty".to_owned());
    }
    let mut edit = None;
    if crate::mp4_guard::looks_like_mp4(&bytes) {
        crate::mp4_guard::check(&bytes)?;
        edit = crate::mp4_guard::audio_edit(&bytes);
    }
    let Some(edit) = edit else {
        return crate::compressed_audio::stream(Box::new(std::io::Cursor::new(bytes)), None, sink);
    };
    // Only the samples the edit list plays: AAC's priming and padding go.
    let (mut seen, mut kept) = (0u64, 0u64);
    crate::compressed_audio::stream(
        Box::new(std::io::Cursor::new(bytes)),
        None,
        &mut |rate, block| {
            let (skip, keep) = edit.in_samples(rate);
            let (start, end) = (seen, seen + block.len() as u64);
            seen = end;
            let from = skip.clamp(start, end) - start;
            let to = skip.saturating_add(keep).clamp(start, end) - start;
            if from < to {
                kept += to - from;
                sink(rate, &block[from as usize..to as usize])?;
            }
            Ok(())
        },
    )?;
    if kept == 0 {
        return Err("the audio file holds no samples (its edit list plays none)".to_owned());
    }
    Ok(())
}

/// All of `source` in memory, at its own rate.
pub fn collect(source: &dyn AudioSource) -> Result<Audio, String> {
    collect_stream(|sink| source.stream(sink))
}

/// What a streaming decoder (`decode`, handed a sink) gives, in memory.
pub(crate) fn collect_stream(
    decode: impl FnOnce(&mut BlockSink<'_>) -> Result<(), String>,
) -> Result<Audio, String> {
    let mut audio = Audio {
        samples: Vec::new(),
        sample_rate: 0,
    };
    decode(&mut |rate, block| {
        audio.sample_rate = rate;
        audio.samples.extend_from_slice(block);
        Ok(())
    })?;
    Ok(audio)
}

/// Streams `source` resampled to `rate` (as [`crate::resample`] would
/// resample it whole) to `sink`.
pub fn stream_at(
    source: &dyn AudioSource,
    rate: u32,
    sink: &mut dyn FnMut(&[f32]) -> Result<(), String>,
) -> Result<(), String> {
    let mut resampler: Option<StreamResampler> = None;
    let mut out = Vec::new();
    source.stream(&mut |from, block| {
        if from == rate {
            return sink(block);
        }
        let resampler = match &mut resampler {
            Some(r) => r,
            None => resampler.insert(StreamResampler::new(from, rate).map_err(|e| e.to_string())?),
        };
        out.clear();
        resampler.push(block, &mut out);
        if out.is_empty() {
            Ok(())
        } else {
            sink(&out)
        }
    })?;
    if let Some(mut resampler) = resampler {
        out.clear();
        resampler.finish(&mut out);
        if !out.is_empty() {
            sink(&out)?;
        }
    }
    Ok(())
}

/// The band-limited (Kaiser-windowed sinc) interpolation filter from one
/// rate to another: output sample `k` is the input signal at time `k / to`;
/// beyond the ends the signal is taken as silence. [`crate::resample`]
/// applies it to a whole signal, [`StreamResampler`] block by block.
#[derive(Debug, Clone)]
pub(crate) struct SincFilter {
    from: f64,
    to: f64,
    cutoff: f64,
    half_width: f64,
    norm: f64,
}

impl SincFilter {
    pub(crate) fn new(from: u32, to: u32) -> Result<Self, PreprocessError> {
        if from == 0 || to == 0 {
            return Err(PreprocessError::Input("a sample rate is zero".to_owned()));
        }
        let (from, to) = (f64::from(from), f64::from(to));
        // Below the lower of the two Nyquist frequencies, in cycles per
        // input sample.
        let cutoff = crate::audio::ROLLOFF * (to / from).min(1.0);
        Ok(Self {
            from,
            to,
            cutoff,
            half_width: crate::audio::FILTER_ZEROS / cutoff,
            norm: bessel_i0(KAISER_BETA),
        })
    }

    fn center(&self, k: usize) -> f64 {
        k as f64 * self.from / self.to
    }

    /// Output samples for `len` input samples: `ceil(len × to / from)`.
    fn wanted(&self, len: usize) -> usize {
        (len as u64 * self.to as u64).div_ceil(self.from as u64) as usize
    }

    /// The first input index output `k` reads.
    fn first(&self, k: usize) -> usize {
        (self.center(k) - self.half_width).ceil().max(0.0) as usize
    }

    /// The last input index output `k` reads, before clamping to the end.
    fn last(&self, k: usize) -> usize {
        (self.center(k) + self.half_width).floor() as usize
    }

    /// Output `k` from inputs `first(k) ..= last`, `input` holding the
    /// signal from index `base` on.
    fn sample(&self, input: &[f32], base: usize, k: usize, last: usize) -> f32 {
        let center = self.center(k);
        let mut acc = 0f64;
        for n in self.first(k)..=last {
            let Some(&x) = n.checked_sub(base).and_then(|i| input.get(i)) else {
                continue;
            };
            let t = n as f64 - center;
            let r = t / self.half_width;
            let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / self.norm;
            let arg = std::f64::consts::PI * self.cutoff * t;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                arg.sin() / arg
            };
            acc += f64::from(x) * self.cutoff * sinc * window;
        }
        acc as f32
    }

    /// All output samples of a whole, non-empty signal.
    pub(crate) fn whole(&self, input: &[f32]) -> Vec<f32> {
        let end = input.len().saturating_sub(1);
        (0..self.wanted(input.len()))
            .map(|k| self.sample(input, 0, k, self.last(k).min(end)))
            .collect()
    }
}

/// [`SincFilter`] block by block: each output sample is computed from the
/// same input samples in the same order as on the whole signal, so the
/// results are identical. Only the input still needed is kept.
#[derive(Debug)]
pub struct StreamResampler {
    filter: SincFilter,
    /// Input samples from index `base` on.
    input: Vec<f32>,
    base: usize,
    /// The next output index.
    next: usize,
}

impl StreamResampler {
    /// A resampler from `from` to `to` samples per second.
    pub fn new(from: u32, to: u32) -> Result<Self, PreprocessError> {
        Ok(Self {
            filter: SincFilter::new(from, to)?,
            input: Vec::new(),
            base: 0,
            next: 0,
        })
    }

    /// Adds input; appends to `out` every output sample whose inputs have
    /// all arrived.
    pub fn push(&mut self, block: &[f32], out: &mut Vec<f32>) {
        self.input.extend_from_slice(block);
        let received = self.base + self.input.len();
        loop {
            let last = self.filter.last(self.next);
            if last >= received {
                break;
            }
            out.push(self.filter.sample(&self.input, self.base, self.next, last));
            self.next += 1;
        }
        // Inputs before the next output's window are done with.
        let first = self.filter.first(self.next);
        if first > self.base {
            let drop = (first - self.base).min(self.input.len());
            self.input.drain(..drop);
            self.base += drop;
        }
    }

    /// The input has ended: appends the remaining output samples
    /// (`ceil(len × to / from)` in all).
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let len = self.base + self.input.len();
        if len == 0 {
            return;
        }
        while self.next < self.filter.wanted(len) {
            let last = self.filter.last(self.next).min(len - 1);
            out.push(self.filter.sample(&self.input, self.base, self.next, last));
            self.next += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Block by block, in any block sizes, gives the whole-signal answer.
    #[test]
    fn streamed_resampling_equals_resampling_whole() {
        let samples: Vec<f32> = (0..44_100u32 * 3 + 17)
            .map(|i| ((i as f32) * 0.0123).sin() * 0.5 + ((i * 31 % 97) as f32 / 970.0))
            .collect();
        let audio = Audio {
            samples: samples.clone(),
            sample_rate: 44_100,
        };
        let whole = crate::resample(&audio, 16_000).unwrap().samples;
        for block in [1usize, 1000, 4096, 1 << 16] {
            let mut resampler = StreamResampler::new(44_100, 16_000).unwrap();
            let mut out = Vec::new();
            for chunk in samples.chunks(block) {
                resampler.push(chunk, &mut out);
            }
            resampler.finish(&mut out);
            assert_eq!(out, whole, "blocks of {block}");
        }
        let mut streamed = Vec::new();
        stream_at(&audio, 16_000, &mut |b| {
            streamed.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(streamed, whole);
    }
}
