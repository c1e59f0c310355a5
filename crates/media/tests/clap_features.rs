//! The CLAP front end against transformers' `ClapFeatureExtractor` for
//! configs other than the fixture's (`fixtures/references/clap_features.json`,
//! made by `fixtures/references/make_clap_references.py`): each padding
//! mode, other FFT sizes (odd too), hops and mel ranges, audio longer than
//! `max_length_s` under `rand_trunc` and `fusion` (with our fixed rules in
//! place of transformers' random draws), and the case transformers refuses.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use ipfs_accelerate_media::preprocess::clap_features::{ClapFeatureConfig, ClapFeatureExtractor};
use ipfs_accelerate_media::read_wav;
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn f32_from_base64(text: &str) -> Vec<f32> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn clap_front_end_matches_transformers_for_every_config_variant() {
    let text = std::fs::read_to_string(fixtures().join("references/clap_features.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config: ClapFeatureConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let extractor = ClapFeatureExtractor::new(config).unwrap();
        let audio = read_wav(&fixtures().join(case["audio_file"].as_str().unwrap())).unwrap();
        let samples = &audio.samples[..case["num_samples"].as_u64().unwrap() as usize];
        let got = extractor.features(samples);
        if let Some(error) = case["error"].as_str() {
            // transformers fails (np.stack of mismatched shapes); we say why.
            let err = got.unwrap_err().to_string();
            assert!(
                err.contains("needs feature_size 64"),
                "{name}: {err} ({error})"
            );
            continue;
        }
        let got = got.unwrap();
        let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
        assert_eq!(
            [1, got.channels, got.frames, got.mels],
            shape[..],
            "{name}: shape"
        );
        assert!(
            extractor.frame_counts().contains(&got.frames),
            "{name}: frame count not announced"
        );
        assert_eq!(
            got.is_longer,
            case["is_longer"].as_bool().unwrap(),
            "{name}: is_longer"
        );
        let want = f32_from_base64(case["data_f32le_base64"].as_str().unwrap());
        let diff = got
            .values
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
        eprintln!("{name}: max abs diff {diff:e}");
    }
}

#[test]
fn unusable_configs_are_refused() {
    let base: ClapFeatureConfig = serde_json::from_str("{}").unwrap();
    // transformers' defaults.
    assert_eq!(base.sampling_rate, 48_000);
    assert_eq!(base.feature_size, 64);
    let with = |patch: Value| -> Result<ClapFeatureExtractor, String> {
        let config: ClapFeatureConfig = serde_json::from_value(patch).map_err(|e| e.to_string())?;
        ClapFeatureExtractor::new(config).map_err(|e| e.to_string())
    };
    let err = with(serde_json::json!({"max_length_s": 0.00001})).unwrap_err();
    assert!(err.contains("whole number of samples"), "{err}");
    let err = with(serde_json::json!({"hop_length": 0})).unwrap_err();
    assert!(err.contains("hop_length 0"), "{err}");
    let err = with(serde_json::json!({"frequency_max": 30000})).unwrap_err();
    assert!(err.contains("frequency_max"), "{err}");
    let err = with(serde_json::json!({"truncation": "middle"})).unwrap_err();
    assert!(err.contains("unknown variant"), "{err}");
    let err = with(serde_json::json!({"padding": "mirror"})).unwrap_err();
    assert!(err.contains("unknown variant"), "{err}");
    let extractor = with(serde_json::json!({})).unwrap();
    let err = extractor.features(&[]).unwrap_err().to_string();
    assert!(err.contains("no samples"), "{err}");
}
