//! `similarity` reproduces transformers' CLIP for the fixture (pixel values,
//! embeddings, logits, probabilities) and refuses bad images with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

#[test]
fn clip_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let clip = Fixture::new("clip");
    let image = clip.file("input.png");
    check_similarity_fixture(cli(home.path()), &clip, ("--image", &image), "pixel_values");
}

/// A PNG that declares `width` x `height` pixels (valid signature and IHDR
/// chunk, no pixel data): decoders learn its size before any allocation.
fn png_declaring(path: &Path, width: u32, height: u32) {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // An empty IDAT and IEND: headers end where pixel data would start.
    for name in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(name);
        png.extend_from_slice(&crc32(name).to_be_bytes());
    }
    std::fs::write(path, png).unwrap();
}

#[test]
fn bad_images_fail_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("clip");
    let image = model.join("input.png");
    let fail = |media: (&str, &Path), text: &str| {
        similarity_failure(cli(home.path()), &model, media, text)
    };
    // Corrupt: a PNG cut in half.
    let truncated = home.path().join("truncated.png");
    write_prefix(&image, &truncated, |n| n / 2);
    let err = fail(("--image", &truncated), "a dog");
    assert!(
        err.contains("truncated.png") && err.contains("not a readable PNG or JPEG"),
        "{err}"
    );
    // Not an image at all.
    let wav = fixture_model("wav2vec2").join("input.wav");
    let err = fail(("--image", &wav), "a dog");
    assert!(err.contains("not a readable PNG or JPEG"), "{err}");
    // Far larger than 100 megapixels: refused before decoding.
    let huge = home.path().join("huge.png");
    png_declaring(&huge, 50_000, 50_000);
    let err = fail(("--image", &huge), "a dog");
    assert!(
        err.contains("50000x50000") && err.contains("at most 100 megapixels"),
        "{err}"
    );
    // Missing file.
    let err = fail(("--image", Path::new("/nonexistent.png")), "a dog");
    assert!(err.contains("/nonexistent.png"), "{err}");
    // A text longer than the 77 positions.
    let err = fail(("--image", &image), &"dog ".repeat(100));
    assert!(err.contains("the model takes at most 77"), "{err}");
    // CLIP takes images, not audio.
    let err = fail(("--audio", &wav), "a dog");
    assert!(err.contains("takes an image (--image), not audio"), "{err}");
    // An empty frames folder is refused before any model loads.
    let empty = home.path().join("no_frames");
    std::fs::create_dir(&empty).unwrap();
    let err = fail(("--video", &empty), "a dog");
    assert!(err.contains("holds no video frames"), "{err}");
    // A speech model is not a similarity model.
    let whisper = fixture_model("whisper");
    let err = similarity_failure(cli(home.path()), &whisper, ("--image", &image), "a dog");
    assert!(err.contains("not a text-media similarity model"), "{err}");
}
