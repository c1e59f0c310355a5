//! `similarity` reproduces transformers' CLIP for the fixture (pixel values,
//! embeddings, logits, probabilities) and refuses bad images with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn texts(reference: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(reference["inputs"]["texts"].clone()).unwrap()
}

fn assert_close(got: &serde_json::Value, want: &serde_json::Value, what: &str) {
    assert_eq!(got["shape"], want["shape"], "{what}: shape");
    let diff = max_abs_diff(&f32_list(&got["data"]), &f32_list(&want["data"]));
    assert!(diff <= 1e-4, "{what}: max abs diff {diff}");
}

#[test]
fn clip_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("clip");
    let reference = reference("clip");
    let out = run(cli(home.path())
        .args([
            "similarity",
            "--json",
            "--return-inputs",
            "--return-embeddings",
            "--model",
        ])
        .arg(&model)
        .arg("--image")
        .arg(model.join("input.png"))
        .args(texts(&reference)));
    let answer = json_ok(&out);
    assert_close(
        &answer["preprocessed"]["pixel_values"],
        &reference["preprocessed"]["pixel_values"],
        "pixel_values",
    );
    assert_close(
        &answer["outputs"]["text_embeds"],
        &reference["outputs"]["text_embeds"],
        "text_embeds",
    );
    assert_close(
        &answer["outputs"]["image_embeds"],
        &reference["outputs"]["image_embeds"],
        "image_embeds",
    );
    let logits = reference_rows(&reference["outputs"]["logits_per_image"]);
    let diff = max_abs_diff(&f32_list(&answer["logits"]), &logits[0]);
    assert!(diff <= 1e-4, "logits: max abs diff {diff}");
    let probs = reference_rows(&reference["outputs"]["probs"]);
    let diff = max_abs_diff(&f32_list(&answer["probs"]), &probs[0]);
    assert!(diff <= 1e-5, "probs: max abs diff {diff}");
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], model.to_str().unwrap());
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
    let image_args = |path: &Path| {
        vec![
            "--image".to_owned(),
            path.to_str().unwrap().to_owned(),
            "a dog".to_owned(),
        ]
    };
    let fail = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        failure_of(home.path(), "similarity", &model, &args)
    };
    // Corrupt: a PNG cut in half.
    let bytes = std::fs::read(model.join("input.png")).unwrap();
    let truncated = home.path().join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = fail(image_args(&truncated));
    assert!(
        err.contains("truncated.png") && err.contains("not a readable PNG or JPEG"),
        "{err}"
    );
    // Not an image at all.
    let wav = fixture_model("wav2vec2").join("input.wav");
    let err = fail(image_args(&wav));
    assert!(err.contains("not a readable PNG or JPEG"), "{err}");
    // Far larger than 100 megapixels: refused before decoding.
    let huge = home.path().join("huge.png");
    png_declaring(&huge, 50_000, 50_000);
    let err = fail(image_args(&huge));
    assert!(
        err.contains("50000x50000") && err.contains("at most 100 megapixels"),
        "{err}"
    );
    // Missing file.
    let err = fail(image_args(Path::new("/nonexistent.png")));
    assert!(err.contains("/nonexistent.png"), "{err}");
    // A text longer than the 77 positions.
    let long = "dog ".repeat(100);
    let err = fail(vec![
        "--image".into(),
        model.join("input.png").to_str().unwrap().into(),
        long,
    ]);
    assert!(err.contains("the model takes at most 77"), "{err}");
    // CLIP takes images, not audio.
    let err = fail(vec![
        "--audio".into(),
        wav.to_str().unwrap().into(),
        "a dog".into(),
    ]);
    assert!(err.contains("takes an image (--image), not audio"), "{err}");
    // An empty frames folder is refused before any model loads.
    let empty = home.path().join("no_frames");
    std::fs::create_dir(&empty).unwrap();
    let err = fail(vec![
        "--video".into(),
        empty.to_str().unwrap().into(),
        "a dog".into(),
    ]);
    assert!(err.contains("holds no video frames"), "{err}");
    // A speech model is not a similarity model.
    let err = failure_of(
        home.path(),
        "similarity",
        &fixture_model("whisper"),
        &[
            "--image",
            model.join("input.png").to_str().unwrap(),
            "a dog",
        ],
    );
    assert!(err.contains("not a text-media similarity model"), "{err}");
}
