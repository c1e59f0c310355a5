//! Compressed audio (FLAC, MP3, Ogg/Vorbis, AAC in MP4/M4A) to mono f32
//! samples, decoded with symphonia packet by packet: memory grows with the
//! samples actually decoded, never with a length a header declares, and
//! decoding stops once the recording passes [`MAX_AUDIO_SECONDS`].

use crate::audio::MAX_AUDIO_SECONDS;
use crate::audio_stream::BlockSink;
use std::io::ErrorKind;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The formats named in errors.
pub(crate) const FORMATS: &str = "WAV, FLAC, MP3, OGG/Vorbis or M4A/AAC";

/// More corrupt packets than this in one file and it is refused: a few are
/// skipped as players skip them, a stream of them is not audio.
const MAX_BAD_PACKETS: usize = 16;

/// Decodes `source` (`extension`, if known, helps the probe), mixing the
/// channels down to mono (their mean, as the feature extractors' loaders
/// do) at the file's own rate. Encoder delay and padding are trimmed where
/// the file says how much (gapless playback). Each packet's mono samples
/// (and the rate) go to `sink`; decoding stops at the sink's first error
/// and returns it.
pub(crate) fn stream(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
    sink: &mut BlockSink<'_>,
) -> Result<(), String> {
    // Only the decoder is contained: a panic in the sink (the caller's
    // code) is caught apart and resumed once the decoder is unwound.
    let mut sink_panic = None;
    let outcome = crate::contained::contain(|| {
        stream_uncontained(source, extension, &mut |rate, block| {
            let call = || crate::contained::uncontained(|| sink(rate, block));
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
                Ok(result) => result,
                Err(payload) => {
                    sink_panic = Some(payload);
                    Err("the caller's code panicked".to_owned())
                }
            }
        })
    });
    if let Some(payload) = sink_panic {
        std::panic::resume_unwind(payload);
    }
    outcome.unwrap_or_else(|panic| {
        Err(format!(
            "the audio decoder failed on this file (corrupt or malformed): {panic}"
        ))
    })
}

fn stream_uncontained(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
    sink: &mut BlockSink<'_>,
) -> Result<(), String> {
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = extension {
        hint.with_extension(extension);
    }
    let options = FormatOptions {
        enable_gapless: true,
        ..FormatOptions::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &options, &MetadataOptions::default())
        .map_err(|e| match e {
            // The probe read to the end, or found no reader: not a format
            // it knows.
            Error::IoError(_) | Error::Unsupported(_) => {
                format!("not a readable audio file ({FORMATS})")
            }
            e => format!("not a readable audio file ({FORMATS}): {e}"),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some())
        .ok_or_else(|| "the file holds no audio track".to_owned())?;
    let track_id = track.id;
    let rate = track.codec_params.sample_rate.unwrap_or_default();
    if rate == 0 {
        return Err("the audio track has a zero sample rate".to_owned());
    }
    let declared = track.codec_params.n_frames;
    if declared.is_some_and(|n| n > MAX_AUDIO_SECONDS * u64::from(rate)) {
        return Err(too_long(declared.unwrap_or_default(), rate));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| format!("unsupported audio codec: {e}"))?;
    let limit = MAX_AUDIO_SECONDS * u64::from(rate);
    let mut decoded_frames = 0u64;
    let mut mono: Vec<f32> = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0;
    let mut cut_short = false;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // The end of the stream (or a packet cut off by it: the
            // declared length below tells them apart where there is one).
            Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(Error::ResetRequired) => break,
            Err(e) => return Err(format!("corrupt audio data: {e}")),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(Error::DecodeError(why)) => {
                bad_packets += 1;
                if bad_packets > MAX_BAD_PACKETS {
                    return Err(format!("corrupt audio data: {why}"));
                }
                continue;
            }
            Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                cut_short = true;
                break;
            }
            Err(e) => return Err(format!("cannot decode the audio: {e}")),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        let fits = buffer
            .as_ref()
            .is_some_and(|b| b.capacity() >= decoded.capacity() * channels);
        if !fits {
            buffer = Some(SampleBuffer::new(needed, spec));
        }
        let Some(buffer) = buffer.as_mut() else {
            continue;
        };
        buffer.copy_interleaved_ref(decoded);
        mono.clear();
        mono.extend(
            buffer
                .samples()
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        decoded_frames += mono.len() as u64;
        if decoded_frames > limit {
            return Err(too_long(decoded_frames, rate));
        }
        if let Some(bad) = mono.iter().find(|v| !v.is_finite()) {
            return Err(format!(
                "the audio holds a non-finite sample ({bad}); it is not usable audio"
            ));
        }
        if !mono.is_empty() {
            sink(rate, &mono)?;
        }
    }
    if decoded_frames == 0 {
        return Err("the audio file holds no samples".to_owned());
    }
    // A stream that says how long it is and stops well before: cut off
    // (an interrupted download), not a shorter recording.
    if let Some(frames) = declared {
        let missing = frames.saturating_sub(decoded_frames);
        if cut_short || missing > u64::from(rate) / 10 {
            return Err(format!(
                "the audio file is truncated: {decoded_frames} of its {frames} samples are there"
            ));
        }
    }
    Ok(())
}

fn too_long(frames: u64, rate: u32) -> String {
    format!(
        "the recording is {} s long; at most {MAX_AUDIO_SECONDS} s is accepted",
        frames / u64::from(rate)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{decode_audio, read_audio, read_wav};
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name)
    }

    /// The Whisper fixture's clip: 20,000 samples at 16 kHz.
    fn wav() -> crate::Audio {
        read_wav(&fixture("models/whisper/input.wav")).unwrap()
    }

    #[test]
    fn flac_is_the_wav_sample_for_sample() {
        let flac = read_audio(&fixture("audio/input.flac")).unwrap();
        assert_eq!(flac, wav());
    }

    /// Lossy codecs give the clip back within one frame of its length
    /// (encoder delay and padding trimmed where the file says how much:
    /// the LAME header, or the MP4 edit list, which symphonia 0.5 leaves
    /// to us).
    #[test]
    fn lossy_formats_decode_to_the_clip() {
        let wav = wav();
        for (file, frame) in [
            ("input.mp3", 1152),
            ("input.ogg", 2048),
            ("input.m4a", 1024),
        ] {
            let audio = read_audio(&fixture(&format!("audio/{file}"))).unwrap();
            assert_eq!(audio.sample_rate, 16_000, "{file}");
            let diff = audio.samples.len().abs_diff(wav.samples.len());
            assert!(
                diff <= frame,
                "{file}: {} samples against {}",
                audio.samples.len(),
                wav.samples.len()
            );
            // The same bytes through the upload path decode alike.
            let bytes = std::fs::read(fixture(&format!("audio/{file}"))).unwrap();
            assert_eq!(decode_audio(&bytes).unwrap(), audio, "{file}");
        }
    }

    /// A panic in the sink (the caller's code, e.g. a model fed block by
    /// block) is the caller's: it unwinds as it is, not as a decoder error.
    #[test]
    fn a_panicking_sink_is_not_blamed_on_the_file() {
        let flac = std::fs::read(fixture("audio/input.flac")).unwrap();
        let caught = std::panic::catch_unwind(|| {
            super::stream(Box::new(std::io::Cursor::new(flac)), None, &mut |_, _| {
                panic!("the model failed")
            })
        });
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the model failed"));
        assert!(!crate::contained::containing_panic());
    }

    /// The fixture's M4A edit list: AAC's 1,024 priming samples skipped,
    /// the 1.25 s clip kept.
    #[test]
    fn the_m4a_edit_list_is_read() {
        let bytes = std::fs::read(fixture("audio/input.m4a")).unwrap();
        crate::mp4_guard::check(&bytes).unwrap();
        let edit = crate::mp4_guard::audio_edit(&bytes).unwrap();
        assert_eq!(edit.in_samples(16_000), (1024, 20_000));
        // Not an MP4 with a sound track: nothing to trim.
        let video = std::fs::read(fixture("audio/video-only.mp4")).unwrap();
        assert_eq!(crate::mp4_guard::audio_edit(&video), None);
    }

    /// Found by the fuzzer: five bytes of the LAME header changed make
    /// symphonia's MP3 demuxer subtract past zero (a panic in debug
    /// builds); contained, it is an error about the file.
    #[test]
    fn a_decoder_panic_is_an_error() {
        let mut mp3 = std::fs::read(fixture("audio/input.mp3")).unwrap();
        for (at, byte) in [(62, 255), (63, 255), (64, 255), (65, 255), (69, 0)] {
            mp3[at] = byte;
        }
        if let Err(err) = decode_audio(&mp3) {
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn bad_audio_is_a_one_line_error() {
        let mp3 = std::fs::read(fixture("audio/input.mp3")).unwrap();
        let flac = std::fs::read(fixture("audio/input.flac")).unwrap();
        let video = std::fs::read(fixture("audio/video-only.mp4")).unwrap();
        let cases: [(&str, &[u8], &str); 6] = [
            ("truncated MP3", &mp3[..mp3.len() * 6 / 10], "truncated"),
            ("truncated FLAC", &flac[..flac.len() / 2], "truncated"),
            ("MP4 without audio", &video, "no audio track"),
            ("empty", b"", "empty"),
            ("FLAC header only", &flac[..42], ""),
            (
                "not audio",
                b"this is a text file, not a recording at all",
                "not a readable audio file",
            ),
        ];
        for (what, bytes, says) in cases {
            let err = decode_audio(bytes).unwrap_err();
            assert!(err.contains(says), "{what}: {err}");
            assert!(!err.contains('\n'), "{what}: {err}");
        }
    }

    /// A header that declares ten hours over a body of a second is refused
    /// from the header, before anything of the declared size is allocated.
    #[test]
    fn a_declared_ten_hours_with_a_short_body_is_refused_from_the_header() {
        let ten_hours: u64 = 10 * 3600 * 16_000;
        // FLAC: STREAMINFO's 36-bit total sample count (bytes 21..26, low
        // nibble of byte 21 first).
        let mut flac = std::fs::read(fixture("audio/input.flac")).unwrap();
        assert_eq!(&flac[..4], b"fLaC");
        flac[21] = (flac[21] & 0xF0) | ((ten_hours >> 32) as u8 & 0x0F);
        flac[22..26].copy_from_slice(&(ten_hours as u32).to_be_bytes());
        // WAV: a 16 kHz mono 16-bit header whose data chunk says ten hours,
        // then one second of silence.
        let data_bytes = (ten_hours * 2) as u32;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data_bytes).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&1u16.to_le_bytes()); // mono
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&data_bytes.to_le_bytes());
        wav.extend(std::iter::repeat_n(0u8, 32_000));
        for (what, bytes) in [("FLAC", &flac), ("WAV", &wav)] {
            let err = decode_audio(bytes).unwrap_err();
            assert!(err.contains("3600"), "{what}: {err}");
            assert!(!err.contains('\n'), "{what}: {err}");
        }
    }
}
