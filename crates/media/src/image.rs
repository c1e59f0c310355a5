//! PNG and JPEG files to 8-bit RGB, refusing images too large to process
//! before decoding them (a small file can declare billions of pixels).

use crate::MediaError;
use image::{ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Images with more pixels are refused (PIL's own decompression-bomb limit
/// is in the same range: it errors above 2 × 89.5 megapixels).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// Image files larger than this are refused before they are read.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a PNG or JPEG file as RGB (alpha dropped, grey replicated), as
/// PIL's `convert("RGB")` does.
pub fn read_image(path: &Path) -> Result<RgbImage, MediaError> {
    let size = std::fs::metadata(path)
        .map_err(|e| MediaError::new(path, format!("cannot open: {e}")))?
        .len();
    if size > MAX_IMAGE_FILE_BYTES {
        return Err(MediaError::new(
            path,
            format!("the file is {size} bytes; at most {MAX_IMAGE_FILE_BYTES} bytes are accepted"),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| MediaError::new(path, format!("cannot read: {e}")))?;
    decode_image(&bytes).map_err(|why| MediaError::new(path, why))
}

/// Decodes PNG or JPEG bytes as RGB; the error says why, for the caller to
/// put beside the input's name.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, String> {
    let open = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read: {e}"))
    };
    let format = open()?.format();
    // The JPEG decoder fills a truncated scan with grey and succeeds; PIL
    // refuses such a file, and so do we.
    if format == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(
            "the JPEG file is truncated (no end-of-image marker after its scan)".to_owned(),
        );
    }
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| format!("not a readable PNG or JPEG image: {e}"))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err("the image has no pixels".to_owned());
    }
    if pixels > MAX_IMAGE_PIXELS {
        return Err(format!(
            "the image is {width}x{height} ({} megapixels); at most {} megapixels are accepted",
            pixels / 1_000_000,
            MAX_IMAGE_PIXELS / 1_000_000
        ));
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    // RGBA at 16 bits per channel is the largest decoded form.
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| format!("not a readable PNG or JPEG image: {e}"))?;
    Ok(decoded.to_rgb8())
}

/// Whether a JPEG stream has an end-of-image marker after its first scan.
/// Walks the marker segments (so a thumbnail's markers inside APP1 do not
/// count), then looks for `FF D9` in the entropy-coded data, where a data
/// `FF` is always followed by `00` or a restart marker.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut at = 2;
    // Marker segments up to the first start-of-scan.
    loop {
        let Some(&[0xFF, marker]) = bytes.get(at..at + 2) else {
            return false;
        };
        match marker {
            0xFF => at += 1,               // fill byte
            0xD9 => return false,          // EOI before any scan
            0x01 | 0xD0..=0xD7 => at += 2, // no length
            _ => {
                let Some(&[hi, lo]) = bytes.get(at + 2..at + 4) else {
                    return false;
                };
                let length = usize::from(u16::from_be_bytes([hi, lo]));
                if length < 2 {
                    return false;
                }
                at += 2 + length;
                if marker == 0xDA {
                    break;
                }
            }
        }
    }
    bytes
        .get(at..)
        .is_some_and(|scan| scan.windows(2).any(|w| w == [0xFF, 0xD9]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_cut_anywhere_is_refused_and_a_whole_one_decodes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/media/gradient.jpg");
        let bytes = std::fs::read(path).unwrap();
        assert!(jpeg_is_complete(&bytes));
        assert!(decode_image(&bytes).is_ok());
        for cut in [2, 20, 300, bytes.len() / 2, bytes.len() - 2] {
            assert!(!jpeg_is_complete(&bytes[..cut]), "cut at {cut}");
            assert!(decode_image(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
