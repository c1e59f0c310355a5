//! Image preprocessing against Pillow and transformers
//! (`fixtures/references/pil_resize.json`, made by
//! `fixtures/references/make_image_references.py`): our resize gives
//! Pillow's bytes exactly, and the CLIP processor gives transformers'
//! `pixel_values`.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use ipfs_accelerate_media::preprocess::image_processor::{ImageProcessor, ImageProcessorConfig};
use ipfs_accelerate_media::preprocess::pil_resize::{resize, Filter};
use ipfs_accelerate_media::read_image;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("references/pil_resize.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn resize_matches_pillow_byte_for_byte() {
    let reference = reference();
    let image = read_image(&fixtures().join("media/gradient.png")).unwrap();
    for case in reference["resize"].as_array().unwrap() {
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let filter = match case["filter"].as_str().unwrap() {
            "bilinear" => Filter::Bilinear,
            _ => Filter::Bicubic,
        };
        let out = resize(&image, w, h, filter);
        let name = format!("{w}x{h} {:?}", filter);
        if let Some(b64) = case["base64"].as_str() {
            let want = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let differing = out
                .as_raw()
                .iter()
                .zip(&want)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differing, 0, "{name}: {differing} bytes differ from Pillow");
        }
        let digest = hex::encode(Sha256::digest(out.as_raw()));
        assert_eq!(
            digest,
            case["sha256"].as_str().unwrap(),
            "{name}: bytes differ from Pillow"
        );
    }
}

#[test]
fn clip_processor_matches_transformers() {
    let reference = reference();
    let config_text =
        std::fs::read_to_string(fixtures().join("models/clip/preprocessor_config.json")).unwrap();
    let config: ImageProcessorConfig = serde_json::from_str(&config_text).unwrap();
    let processor = ImageProcessor::new(&config).unwrap();
    for case in reference["clip_processor"]["images"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let image = read_image(&fixtures().join("media").join(file)).unwrap();
        let (values, w, h) = processor.pixel_values(&image);
        let shape: Vec<u64> = serde_json::from_value(case["shape"].clone()).unwrap();
        assert_eq!(shape, [1, 3, u64::from(h), u64::from(w)], "{file}");
        let want: Vec<f32> = serde_json::from_value(case["data"].clone()).unwrap();
        let diff = values
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // JPEG decoders (image's vs libjpeg) differ by a few levels; one
        // level is 1/255/std ~ 0.015 after normalisation.
        let tolerance = if file.ends_with(".jpg") { 0.1 } else { 1e-6 };
        assert!(diff <= tolerance, "{file}: max abs diff {diff}");
    }
}
