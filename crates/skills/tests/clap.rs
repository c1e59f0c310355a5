//! CLAP through the library against transformers for the config variants
//! in `fixtures/models/variants/clap_*` (made by
//! `fixtures/variants-src/make_clap_variants.py`): the fused model
//! (4-channel features, feature fusion, a one-window last stage) and an odd
//! patch grid (conv padding, window padding under shifted windows, mel-axis
//! interpolation, no qkv bias, no patch norm), each with audio longer and
//! shorter than `max_length_s`. Also: configs that cannot work are refused
//! at load with the reason.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::media::{read_wav, Audio};
use ipfs_accelerate_skills::{Array, Media, SimilarityModel, SimilarityOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn loader(home: &Path) -> Loader {
    Loader::builder()
        .cache_dir(home.join("cache"))
        .hub_cache_dir(home.join("hub"))
        .build()
        .unwrap()
}

fn load(home: &Path, folder: &Path) -> Result<SimilarityModel, String> {
    let model = ModelRef::parse(folder.to_str().unwrap()).unwrap();
    SimilarityModel::load(&loader(home), &model, BackendKind::Cpu).map_err(|e| e.to_string())
}

fn values(array: &Value) -> Vec<f32> {
    serde_json::from_value(array["data"].clone()).unwrap()
}

fn shape(array: &Value) -> Vec<usize> {
    serde_json::from_value(array["shape"].clone()).unwrap()
}

fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

fn check(got: &Array, want: &Value, what: &str) -> f32 {
    assert_eq!(got.shape, shape(want), "{what}: shape");
    let diff = max_abs_diff(&got.data, &values(want));
    assert!(diff <= 1e-4, "{what}: max abs diff {diff}");
    diff
}

fn variant_matches_reference(variant: &str) {
    let home = tempfile::tempdir().unwrap();
    let folder = fixtures().join("models/variants").join(variant);
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("reference.json")).unwrap())
            .unwrap();
    let features = candle_core::safetensors::load(
        folder.join("reference.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let model = load(home.path(), &folder).unwrap();
    assert_eq!(model.backend(), BackendKind::Cpu);
    let recording = read_wav(&folder.join("input.wav")).unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let name = format!("{variant} {}", case["name"].as_str().unwrap());
        let audio = Audio {
            samples: recording.samples[..case["num_samples"].as_u64().unwrap() as usize].to_vec(),
            sample_rate: recording.sample_rate,
        };
        let texts: Vec<String> = serde_json::from_value(case["texts"].clone()).unwrap();
        let options = SimilarityOptions {
            return_inputs: true,
            return_embeddings: true,
        };
        let got = model.score(Media::Audio(&audio), &texts, options).unwrap();
        let key = case["input_features"]["key"].as_str().unwrap();
        let want_features = features[key]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got_features = &got.preprocessed["input_features"];
        assert_eq!(
            got_features.shape,
            features[key].dims(),
            "{name}: input_features shape"
        );
        let f = max_abs_diff(&got_features.data, &want_features);
        assert!(f <= 1e-4, "{name}: input_features max abs diff {f}");
        let t = check(&got.outputs["text_embeds"], &case["text_embeds"], &name);
        let a = check(&got.outputs["audio_embeds"], &case["audio_embeds"], &name);
        let l = max_abs_diff(&got.logits, &values(&case["logits_per_audio"]));
        assert!(l <= 1e-4, "{name}: logits max abs diff {l}");
        let p = max_abs_diff(&got.probs, &values(&case["probs"]));
        assert!(p <= 1e-5, "{name}: probs max abs diff {p}");
        eprintln!(
            "{name}: max abs diff input_features {f:e}, text_embeds {t:e}, audio_embeds {a:e}, logits {l:e}, probs {p:e}"
        );
    }
}

#[test]
fn fused_clap_matches_transformers() {
    variant_matches_reference("clap_fused");
}

#[test]
fn odd_grid_clap_matches_transformers() {
    variant_matches_reference("clap_odd_grid");
}

/// A copy of fixture model `from` with `edit` applied to its JSON `file`.
fn edited_copy(into: &Path, from: &Path, file: &str, edit: impl Fn(&mut Value)) -> PathBuf {
    let dir = into.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let path = dir.join(file);
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    dir
}

#[test]
fn configs_that_cannot_work_are_refused_at_load() {
    let fused = fixtures().join("models/variants/clap_fused");
    let plain = fixtures().join("models/clap");
    // A fused model with one-channel features.
    let home = tempfile::tempdir().unwrap();
    let dir = edited_copy(home.path(), &fused, "preprocessor_config.json", |j| {
        j["truncation"] = "rand_trunc".into();
    });
    let err = load(home.path(), &dir).unwrap_err();
    assert!(
        err.contains("truncation 'rand_trunc' gives 1-channel features") && err.contains("takes 4"),
        "{err}"
    );
    // Mel bins the batch norm does not take.
    let home = tempfile::tempdir().unwrap();
    let dir = edited_copy(home.path(), &plain, "preprocessor_config.json", |j| {
        j["feature_size"] = 40.into();
    });
    let err = load(home.path(), &dir).unwrap_err();
    assert!(err.contains("num_mel_bins 32"), "{err}");
    // More frames than the model's input holds.
    let home = tempfile::tempdir().unwrap();
    let dir = edited_copy(home.path(), &plain, "preprocessor_config.json", |j| {
        j["max_length_s"] = 5.into();
    });
    let err = load(home.path(), &dir).unwrap_err();
    assert!(
        err.contains("251 frames") && err.contains("exceed"),
        "{err}"
    );
    // A stage smaller than the window: transformers fails on it too.
    let home = tempfile::tempdir().unwrap();
    let dir = edited_copy(home.path(), &plain, "config.json", |j| {
        j["audio_config"]["window_size"] = 16.into();
    });
    let err = load(home.path(), &dir).unwrap_err();
    assert!(err.contains("smaller than window_size 16"), "{err}");
}
