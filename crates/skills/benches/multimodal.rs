//! One request per multimodal skill on the fixture models (tiny random
//! weights: the numbers measure our pipeline around the model, which is
//! what the fixtures can show), and alone the preprocessing step that
//! dominates such requests (log-mel spectrogram, image resize and tiling),
//! so the summary can give its share.
//!
//! Group `multimodal`, functions `<skill>_request` and `<skill>_preprocess`.
//! `cargo xtask bench multimodal` runs it on 2 threads and summarises.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use criterion::{criterion_group, criterion_main, Criterion};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::media::{read_frames, read_image, read_wav, resample};
use ipfs_accelerate_skills::preprocess::anyres::{AnyResConfig, AnyResProcessor};
use ipfs_accelerate_skills::preprocess::clap_features::{ClapFeatureConfig, ClapFeatureExtractor};
use ipfs_accelerate_skills::preprocess::image_processor::{ImageProcessor, ImageProcessorConfig};
use ipfs_accelerate_skills::preprocess::log_mel::{LogMel, LogMelConfig};
use ipfs_accelerate_skills::preprocess::waveform::{input_values, WaveformConfig};
use ipfs_accelerate_skills::{
    CaptionOptions, GenerateOptions, ImageCaptioner, Media, SimilarityModel, SimilarityOptions,
    SpeechRecognizer, TranscribeOptions,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(name)
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn reference_texts(name: &str) -> Vec<String> {
    let reference: serde_json::Value = json(&fixture(name).join("reference.json"));
    serde_json::from_value(reference["inputs"]["texts"].clone()).unwrap()
}

fn bench(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let model = |name: &str| ModelRef::parse(fixture(name).to_str().unwrap()).unwrap();
    let mut group = c.benchmark_group("multimodal");
    group.measurement_time(Duration::from_secs(5));

    // Whisper: 30 s log-mel window, 12 greedy tokens.
    let whisper = SpeechRecognizer::load(&loader, &model("whisper"), BackendKind::Cpu).unwrap();
    let audio = read_wav(&fixture("whisper").join("input.wav")).unwrap();
    let options = TranscribeOptions {
        max_new_tokens: 12,
        return_inputs: false,
        return_logits: false,
    };
    group.bench_function("whisper_request", |b| {
        b.iter(|| whisper.transcribe(&audio, &options).unwrap())
    });
    let mel = LogMel::new(json::<LogMelConfig>(
        &fixture("whisper").join("preprocessor_config.json"),
    ))
    .unwrap();
    let rate = mel.config().sampling_rate;
    group.bench_function("whisper_preprocess", |b| {
        b.iter(|| {
            mel.features(&resample(&audio, rate).unwrap().samples)
                .unwrap()
        })
    });

    // wav2vec2: normalisation is the whole front end.
    let wav2vec2 = SpeechRecognizer::load(&loader, &model("wav2vec2"), BackendKind::Cpu).unwrap();
    let audio = read_wav(&fixture("wav2vec2").join("input.wav")).unwrap();
    group.bench_function("wav2vec2_request", |b| {
        b.iter(|| wav2vec2.transcribe(&audio, &options).unwrap())
    });
    let waveform: WaveformConfig = json(&fixture("wav2vec2").join("preprocessor_config.json"));
    group.bench_function("wav2vec2_preprocess", |b| {
        b.iter(|| input_values(&waveform, &audio.samples))
    });

    // CLIP: resize + crop + normalise, then both towers.
    let clip = SimilarityModel::load(&loader, &model("clip"), BackendKind::Cpu).unwrap();
    let image = read_image(&fixture("clip").join("input.png")).unwrap();
    let texts = reference_texts("clip");
    group.bench_function("clip_request", |b| {
        b.iter(|| {
            clip.score(Media::Image(&image), &texts, SimilarityOptions::default())
                .unwrap()
        })
    });
    let processor = ImageProcessor::new(&json::<ImageProcessorConfig>(
        &fixture("clip").join("preprocessor_config.json"),
    ))
    .unwrap();
    group.bench_function("clip_preprocess", |b| {
        b.iter(|| processor.pixel_values(&image))
    });

    // CLAP: resample + its log-mel front end, then both towers.
    let clap = SimilarityModel::load(&loader, &model("clap"), BackendKind::Cpu).unwrap();
    let audio = read_wav(&fixture("clap").join("input.wav")).unwrap();
    let texts = reference_texts("clap");
    group.bench_function("clap_request", |b| {
        b.iter(|| {
            clap.score(Media::Audio(&audio), &texts, SimilarityOptions::default())
                .unwrap()
        })
    });
    let extractor = ClapFeatureExtractor::new(json::<ClapFeatureConfig>(
        &fixture("clap").join("preprocessor_config.json"),
    ))
    .unwrap();
    let rate = extractor.config().sampling_rate;
    group.bench_function("clap_preprocess", |b| {
        b.iter(|| {
            extractor
                .features(&resample(&audio, rate).unwrap().samples)
                .unwrap()
        })
    });

    // X-CLIP: four frames through the per-frame image processor.
    let xclip = SimilarityModel::load(&loader, &model("xclip"), BackendKind::Cpu).unwrap();
    let frames = read_frames(&fixture("xclip").join("frames")).unwrap();
    let texts = reference_texts("xclip");
    group.bench_function("xclip_request", |b| {
        b.iter(|| {
            xclip
                .score(Media::Video(&frames), &texts, SimilarityOptions::default())
                .unwrap()
        })
    });
    // The fixture's file names every key, so the plain processor is X-CLIP's.
    let processor = ImageProcessor::new(&json::<ImageProcessorConfig>(
        &fixture("xclip").join("preprocessor_config.json"),
    ))
    .unwrap();
    group.bench_function("xclip_preprocess", |b| {
        b.iter(|| {
            frames
                .iter()
                .map(|f| processor.pixel_values(f))
                .collect::<Vec<_>>()
        })
    });

    // LLaVA and LLaVA-NeXT: 12 greedy tokens about the fixture image.
    let generate = GenerateOptions {
        max_new_tokens: 12,
        ..GenerateOptions::default()
    };
    for name in ["llava", "llava_next"] {
        let captioner = ImageCaptioner::load(&loader, &model(name), BackendKind::Cpu).unwrap();
        let reference: serde_json::Value = json(&fixture(name).join("reference.json"));
        let prompt = reference["inputs"]["prompt"].as_str().unwrap().to_owned();
        let image = read_image(&fixture(name).join("input.png")).unwrap();
        group.bench_function(format!("{name}_request"), |b| {
            b.iter(|| {
                captioner
                    .caption(
                        &image,
                        &prompt,
                        &generate,
                        CaptionOptions::default(),
                        &mut |_| {},
                    )
                    .unwrap()
            })
        });
        let config_path = fixture(name).join("preprocessor_config.json");
        if name == "llava" {
            let processor = ImageProcessor::new(&json(&config_path)).unwrap();
            group.bench_function(format!("{name}_preprocess"), |b| {
                b.iter(|| processor.pixel_values(&image))
            });
        } else {
            let tiler = AnyResProcessor::new(&json::<AnyResConfig>(&config_path)).unwrap();
            group.bench_function(format!("{name}_preprocess"), |b| {
                b.iter(|| tiler.tiles(&image))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
