//! One request per multimodal family on its fixture model (tiny random
//! weights: the numbers measure our pipeline around the model, which is
//! what the fixtures can show), and alone the preprocessing step that
//! dominates such requests (log-mel spectrogram, image resize and tiling),
//! so the summary can give its share.
//!
//! The families are the family table's speech, similarity and image-to-text
//! rows; each is run by its skill on its fixture's inputs, and its front end
//! is the one its `preprocessor_config.json` names. Group `multimodal`,
//! functions `<fixture>_request` and `<fixture>_preprocess`.
//! `cargo xtask bench multimodal` runs it on 2 threads and summarises.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::media::{read_frames, read_image, read_wav, resample};
use ipfs_accelerate_skills::preprocess::anyres::{AnyResConfig, AnyResProcessor};
use ipfs_accelerate_skills::preprocess::clap_features::{ClapFeatureConfig, ClapFeatureExtractor};
use ipfs_accelerate_skills::preprocess::image_processor::{ImageProcessor, ImageProcessorConfig};
use ipfs_accelerate_skills::preprocess::log_mel::{LogMel, LogMelConfig};
use ipfs_accelerate_skills::preprocess::waveform::{input_values, WaveformConfig};
use ipfs_accelerate_skills::{
    families, CaptionOptions, FamilyInfo, GenerateOptions, ImageCaptioner, Media, SimilarityModel,
    SimilarityOptions, SkillKind, SpeechRecognizer, TranscribeOptions,
};
use serde_json::Value;
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

/// A fixture's decoded inputs.
struct Inputs {
    dir: PathBuf,
    reference: Value,
}

impl Inputs {
    fn texts(&self) -> Vec<String> {
        serde_json::from_value(self.reference["inputs"]["texts"].clone()).unwrap()
    }

    fn prompt(&self) -> String {
        self.reference["inputs"]["prompt"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// `<fixture>_request`: one request of the family's skill, 12 greedy
/// tokens where it generates.
fn bench_request(group: &mut BenchmarkGroup<'_, WallTime>, loader: &Loader, family: &FamilyInfo) {
    let name = family.fixture;
    let inputs = Inputs {
        dir: fixture(name),
        reference: json(&fixture(name).join("reference.json")),
    };
    let model = ModelRef::parse(inputs.dir.to_str().unwrap()).unwrap();
    let id = format!("{name}_request");
    let generate = GenerateOptions {
        max_new_tokens: 12,
        ..GenerateOptions::default()
    };
    match family.skill {
        SkillKind::SpeechRecognition => {
            let recognizer = SpeechRecognizer::load(loader, &model, BackendKind::Cpu).unwrap();
            let audio = read_wav(&inputs.dir.join("input.wav")).unwrap();
            let options = TranscribeOptions {
                max_new_tokens: 12,
                return_inputs: false,
                return_logits: false,
                language: None,
                task: None,
                timestamps: false,
                ..TranscribeOptions::default()
            };
            group.bench_function(id, |b| {
                b.iter(|| recognizer.transcribe(&audio, &options).unwrap())
            });
        }
        SkillKind::Similarity => {
            let model = SimilarityModel::load(loader, &model, BackendKind::Cpu).unwrap();
            let texts = inputs.texts();
            let options = SimilarityOptions::default();
            match family.media {
                Some("audio") => {
                    let audio = read_wav(&inputs.dir.join("input.wav")).unwrap();
                    group.bench_function(id, |b| {
                        b.iter(|| model.score(Media::Audio(&audio), &texts, options).unwrap())
                    });
                }
                Some("video") => {
                    let frames = read_frames(&inputs.dir.join("frames")).unwrap();
                    group.bench_function(id, |b| {
                        b.iter(|| model.score(Media::Video(&frames), &texts, options).unwrap())
                    });
                }
                _ => {
                    let image = read_image(&inputs.dir.join("input.png")).unwrap();
                    group.bench_function(id, |b| {
                        b.iter(|| model.score(Media::Image(&image), &texts, options).unwrap())
                    });
                }
            }
        }
        SkillKind::ImageToText => {
            let captioner = ImageCaptioner::load(loader, &model, BackendKind::Cpu).unwrap();
            let prompt = inputs.prompt();
            let image = read_image(&inputs.dir.join("input.png")).unwrap();
            group.bench_function(id, |b| {
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
        }
        _ => {}
    }
}

/// `<fixture>_preprocess`: the front end `preprocessor_config.json` names,
/// alone, on the fixture's media.
fn bench_preprocess(group: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let dir = fixture(name);
    let config_path = dir.join("preprocessor_config.json");
    let config: Value = json(&config_path);
    let id = format!("{name}_preprocess");
    let kind = config["feature_extractor_type"]
        .as_str()
        .or_else(|| config["image_processor_type"].as_str())
        .unwrap_or_default();
    match kind {
        "WhisperFeatureExtractor" => {
            let audio = read_wav(&dir.join("input.wav")).unwrap();
            let mel = LogMel::new(json::<LogMelConfig>(&config_path)).unwrap();
            let rate = mel.config().sampling_rate;
            group.bench_function(id, |b| {
                b.iter(|| {
                    mel.features(&resample(&audio, rate).unwrap().samples)
                        .unwrap()
                })
            });
        }
        "Wav2Vec2FeatureExtractor" => {
            let audio = read_wav(&dir.join("input.wav")).unwrap();
            let waveform: WaveformConfig = json(&config_path);
            group.bench_function(id, |b| b.iter(|| input_values(&waveform, &audio.samples)));
        }
        "ClapFeatureExtractor" => {
            let audio = read_wav(&dir.join("input.wav")).unwrap();
            let extractor =
                ClapFeatureExtractor::new(json::<ClapFeatureConfig>(&config_path)).unwrap();
            let rate = extractor.config().sampling_rate;
            group.bench_function(id, |b| {
                b.iter(|| {
                    extractor
                        .features(&resample(&audio, rate).unwrap().samples)
                        .unwrap()
                })
            });
        }
        "LlavaNextImageProcessor" => {
            let image = read_image(&dir.join("input.png")).unwrap();
            let tiler = AnyResProcessor::new(&json::<AnyResConfig>(&config_path)).unwrap();
            group.bench_function(id, |b| b.iter(|| tiler.tiles(&image)));
        }
        _ => {
            // CLIP's processor, per frame for a video (the fixture's file
            // names every key, so the plain processor is VideoMAE's too).
            let processor =
                ImageProcessor::new(&json::<ImageProcessorConfig>(&config_path)).unwrap();
            let frames = if dir.join("frames").is_dir() {
                read_frames(&dir.join("frames")).unwrap()
            } else {
                vec![read_image(&dir.join("input.png")).unwrap()]
            };
            group.bench_function(id, |b| {
                b.iter(|| {
                    frames
                        .iter()
                        .map(|f| processor.pixel_values(f))
                        .collect::<Vec<_>>()
                })
            });
        }
    }
}

fn bench(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let loader = Loader::builder().cache_dir(cache.path()).build().unwrap();
    let mut group = c.benchmark_group("multimodal");
    group.measurement_time(Duration::from_secs(5));
    let multimodal = families().filter(|f| {
        matches!(
            f.skill,
            SkillKind::SpeechRecognition | SkillKind::Similarity | SkillKind::ImageToText
        )
    });
    for family in multimodal {
        bench_request(&mut group, &loader, &family);
        bench_preprocess(&mut group, family.fixture);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
