//! Media inside requests: images and audio sent as `data:` URLs or bare
//! base64 (JSON routes), and uploaded files (multipart), decoded with the
//! same limits as the command line's files. Bad media is a 400 with one
//! line saying why.
//!
//! Remote `http(s)://` URLs are refused rather than fetched: fetching would
//! let any client make the server reach arbitrary hosts (and the machines
//! this runs on are often offline).

use crate::ApiError;
use base64::Engine;
use ipfs_accelerate::media::{decode_audio, decode_image, Audio, RgbImage, MAX_VIDEO_FRAMES};

/// The bytes of a `data:` URL (base64) or of bare base64.
pub fn decode_data(value: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    let value = value.trim();
    if value.starts_with("http://") || value.starts_with("https://") {
        return Err(ApiError::bad_request(format!(
            "{what}: remote URLs are not fetched; send the file as a data: URL (data:<type>;base64,...)"
        )));
    }
    let payload = match value.strip_prefix("data:") {
        Some(rest) => {
            let (header, data) = rest.split_once(',').ok_or_else(|| {
                ApiError::bad_request(format!("{what}: a data: URL needs a comma before its data"))
            })?;
            if !header.ends_with(";base64") {
                return Err(ApiError::bad_request(format!(
                    "{what}: only base64 data: URLs are accepted (data:<type>;base64,...)"
                )));
            }
            data
        }
        None => value,
    };
    if payload.is_empty() {
        return Err(ApiError::bad_request(format!("{what}: no data")));
    }
    let cleaned: String = payload.split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("{what}: not valid base64: {e}")))
}

/// An image (PNG or JPEG) from a data URL or base64.
pub fn image(value: &str, what: &str) -> Result<RgbImage, ApiError> {
    let bytes = decode_data(value, what)?;
    decode_image(&bytes).map_err(|why| ApiError::bad_request(format!("{what}: {why}")))
}

/// Audio (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC) from a data URL or base64.
pub fn audio(value: &str, what: &str) -> Result<Audio, ApiError> {
    audio_bytes(&decode_data(value, what)?, what)
}

/// Audio (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC) from an upload's bytes.
pub fn audio_bytes(bytes: &[u8], what: &str) -> Result<Audio, ApiError> {
    decode_audio(bytes).map_err(|why| ApiError::bad_request(format!("{what}: {why}")))
}

/// A video as its frames (each a data URL or base64 image), in order.
pub fn video(frames: &[String]) -> Result<Vec<RgbImage>, ApiError> {
    if frames.is_empty() {
        return Err(ApiError::bad_request("video: no frames"));
    }
    if frames.len() > MAX_VIDEO_FRAMES {
        return Err(ApiError::bad_request(format!(
            "video: {} frames; at most {MAX_VIDEO_FRAMES} are accepted",
            frames.len()
        )));
    }
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| image(frame, &format!("video frame {}", i + 1)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_bare_base64_decode_alike() {
        assert_eq!(
            decode_data("data:audio/wav;base64,UklGRg==", "x").unwrap(),
            b"RIFF"
        );
        assert_eq!(decode_data("UklG\nRg==", "x").unwrap(), b"RIFF");
        for bad in [
            "https://example.com/a.png",
            "data:image/png,abc",
            "data:;base64,",
            "!!!",
        ] {
            let err = decode_data(bad, "image 1").unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.message.starts_with("image 1: "), "{}", err.message);
        }
    }

    #[test]
    fn corrupt_media_is_a_one_line_400() {
        let err = image("data:image/png;base64,iVBORw0KGgo=", "image").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(!err.message.contains('\n'), "{}", err.message);
        let err = audio("UklGRg==", "audio").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("WAV"), "{}", err.message);
    }
}
