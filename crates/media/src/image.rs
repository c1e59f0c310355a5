//! PNG and JPEG files to 8-bit RGB, refusing images too large to process
//! before decoding them (a small file can declare billions of pixels).

use crate::MediaError;
use image::{ImageReader, Limits, RgbImage};
use std::path::Path;

/// Images with more pixels are refused (PIL's own decompression-bomb limit
/// is in the same range: it errors above 2 × 89.5 megapixels).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// Reads a PNG or JPEG file as RGB (alpha dropped, grey replicated), as
/// PIL's `convert("RGB")` does.
pub fn read_image(path: &Path) -> Result<RgbImage, MediaError> {
    let open = || {
        ImageReader::open(path)
            .map_err(|e| MediaError::new(path, format!("cannot open: {e}")))?
            .with_guessed_format()
            .map_err(|e| MediaError::new(path, format!("cannot read: {e}")))
    };
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| MediaError::new(path, format!("not a readable PNG or JPEG image: {e}")))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(MediaError::new(path, "the image has no pixels"));
    }
    if pixels > MAX_IMAGE_PIXELS {
        return Err(MediaError::new(
            path,
            format!(
                "the image is {width}x{height} ({} megapixels); at most {} megapixels are accepted",
                pixels / 1_000_000,
                MAX_IMAGE_PIXELS / 1_000_000
            ),
        ));
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    // RGBA at 16 bits per channel is the largest decoded form.
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| MediaError::new(path, format!("not a readable PNG or JPEG image: {e}")))?;
    Ok(decoded.to_rgb8())
}
