//! Every row of the family table against its fixture's reference, through
//! the library (no binary): the registry finds the family from the
//! fixture's `config.json`, the skill loads it on candle's CPU backend, and
//! its answer — shaped as the CLI's `--json` answer — must give transformers'
//! greedy ids / text exactly and values within 1e-4 (the same check
//! `cargo xtask matrix` makes through the CLI on every backend). A family
//! added to the table is tested here without touching this file.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::media::{read_frames, read_image, read_wav};
use ipfs_accelerate::skills::{
    families, GenerateOptions, ImageCaptioner, Media, SimilarityModel, SimilarityOptions,
    SpeechRecognizer, Text2TextGenerator, TextEmbedder, TextGenerator, TranscribeOptions,
};
use ipfs_accelerate::{BackendKind, Loader, ModelRef};
use ipfs_accelerate_tests::{
    fixture_model, fixture_ref, loader, parity, reference, string_list, Check,
};
use serde_json::{json, Value};
use std::path::Path;

/// Values may differ from transformers' by this much (f32 kernels).
const TOLERANCE: f64 = 1e-4;
/// New tokens generated, as the fixtures' references did.
const NEW_TOKENS: usize = 12;

fn greedy() -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        return_logits: true,
        ..GenerateOptions::default()
    }
}

/// The family's answer to its fixture's inputs, as the CLI would print it.
fn answer(loader: &Loader, model: &ModelRef, dir: &Path, check: Check, r: &Value) -> Value {
    let cpu = BackendKind::Cpu;
    let texts = match &r["inputs"]["texts"] {
        Value::Null => Vec::new(),
        listed => string_list(listed),
    };
    let prompt = r["inputs"]["prompt"].as_str().unwrap_or_default();
    match check {
        Check::Embed => {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embedder = TextEmbedder::load(loader, model, cpu).unwrap();
            json!({ "embeddings": embedder.embed(&texts).unwrap() })
        }
        Check::Generate => {
            let generator = TextGenerator::load(loader, model, cpu).unwrap();
            json(generator.generate(prompt, &greedy(), &mut |_| {}).unwrap())
        }
        Check::Text2Text => {
            let generator = Text2TextGenerator::load(loader, model, cpu).unwrap();
            json(
                generator
                    .generate(&texts[0], &greedy(), &mut |_| {})
                    .unwrap(),
            )
        }
        Check::Whisper | Check::Ctc => {
            let recognizer = SpeechRecognizer::load(loader, model, cpu).unwrap();
            let audio = read_wav(&dir.join("input.wav")).unwrap();
            let options = TranscribeOptions {
                max_new_tokens: NEW_TOKENS,
                return_inputs: false,
                return_logits: true,
                language: None,
                task: None,
                timestamps: false,
                ..TranscribeOptions::default()
            };
            json(recognizer.transcribe(&audio, &options).unwrap())
        }
        Check::Similarity { media } => {
            let similarity = SimilarityModel::load(loader, model, cpu).unwrap();
            let input = dir.join(Check::media_input(media));
            let options = SimilarityOptions::default();
            let scored = match media {
                "image" => {
                    let image = read_image(&input).unwrap();
                    similarity.score(Media::Image(&image), &texts, options)
                }
                "audio" => {
                    let audio = read_wav(&input).unwrap();
                    similarity.score(Media::Audio(&audio), &texts, options)
                }
                _ => {
                    let frames = read_frames(&input).unwrap();
                    similarity.score(Media::Video(&frames), &texts, options)
                }
            };
            json(scored.unwrap())
        }
        Check::Caption => {
            let captioner = ImageCaptioner::load(loader, model, cpu).unwrap();
            let image = read_image(&dir.join("input.png")).unwrap();
            let caption = captioner
                .caption(&image, prompt, &greedy(), Default::default(), &mut |_| {})
                .unwrap();
            json(caption)
        }
    }
}

/// An answer as JSON.
fn json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn every_family_reproduces_its_reference_on_the_cpu() {
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let mut failures = Vec::new();
    let mut checked = 0;
    for family in families() {
        let check = Check::for_family(family.skill.name(), family.media, family.decoding)
            .unwrap_or_else(|| panic!("{}: no parity check for its skill", family.model_type));
        let dir = fixture_model(family.fixture);
        let r = reference(family.fixture);
        let answer = answer(&loader, &fixture_ref(family.fixture), &dir, check, &r);
        let (exact, max_abs) = parity(check, &answer, &r, family.fixture);
        eprintln!(
            "{:<11} ids/text exact: {exact}, max |Δ| {max_abs:.2e}",
            family.model_type
        );
        if !exact || max_abs > TOLERANCE {
            failures.push(format!(
                "{} (fixture {}): ids/text exact {exact}, max |Δ| {max_abs:e}",
                family.model_type, family.fixture
            ));
        }
        checked += 1;
    }
    assert!(checked >= 12, "the family table lists {checked} families");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
