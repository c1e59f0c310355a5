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
use ipfs_accelerate::{BackendKind, Layer, Loader, ModelRef, ResolvedFile};
use ipfs_accelerate_tests::{
    copy_dir, fixture_model, fixture_ref, loader, ort_missing_skip, parity, reference, string_list,
    Check,
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

/// The family's answer to its fixture's inputs on the CPU, as the CLI
/// would print it.
fn answer(loader: &Loader, model: &ModelRef, dir: &Path, check: Check, r: &Value) -> Value {
    answer_on(loader, model, dir, check, r, BackendKind::Cpu).0
}

/// What loaded the model: the backend that ran and the files read.
type LoadedBy = (BackendKind, Vec<ResolvedFile>);

/// The family's answer on `backend`, with the backend that ran and the
/// files the skill read.
fn answer_on(
    loader: &Loader,
    model: &ModelRef,
    dir: &Path,
    check: Check,
    r: &Value,
    backend: BackendKind,
) -> (Value, LoadedBy) {
    let cpu = backend;
    let loaded = |backend: BackendKind, files: &[ResolvedFile]| (backend, files.to_vec());
    let texts = match &r["inputs"]["texts"] {
        Value::Null => Vec::new(),
        listed => string_list(listed),
    };
    let prompt = r["inputs"]["prompt"].as_str().unwrap_or_default();
    match check {
        Check::Embed => {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embedder = TextEmbedder::load(loader, model, cpu).unwrap();
            (
                json!({ "embeddings": embedder.embed(&texts).unwrap() }),
                loaded(embedder.backend(), embedder.files()),
            )
        }
        Check::Generate => {
            let generator = TextGenerator::load(loader, model, cpu).unwrap();
            (
                json(generator.generate(prompt, &greedy(), &mut |_| {}).unwrap()),
                loaded(generator.backend(), generator.files()),
            )
        }
        Check::Text2Text => {
            let generator = Text2TextGenerator::load(loader, model, cpu).unwrap();
            (
                json(
                    generator
                        .generate(&texts[0], &greedy(), &mut |_| {})
                        .unwrap(),
                ),
                loaded(generator.backend(), generator.files()),
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
            (
                json(recognizer.transcribe(&audio, &options).unwrap()),
                loaded(recognizer.backend(), recognizer.files()),
            )
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
            (
                json(scored.unwrap()),
                loaded(similarity.backend(), similarity.files()),
            )
        }
        Check::Caption => {
            let captioner = ImageCaptioner::load(loader, model, cpu).unwrap();
            let image = read_image(&dir.join("input.png")).unwrap();
            let caption = captioner
                .caption(&image, prompt, &greedy(), Default::default(), &mut |_| {})
                .unwrap();
            (
                json(caption),
                loaded(captioner.backend(), captioner.files()),
            )
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

/// Every family with an exporter, from a copy of its fixture without any
/// `onnx/` folder, on ONNX Runtime and OpenVINO: the first load exports
/// the graphs (answer's `files`: source `export`) and reproduces the
/// reference like the CPU path; a second load, in a fresh loader on the
/// same cache, finds them cached (source `cache`) and exports nothing.
#[test]
fn exportable_families_reproduce_their_references_on_onnx_backends_exported_on_first_use() {
    let test =
        "exportable_families_reproduce_their_references_on_onnx_backends_exported_on_first_use";
    let mut failures = Vec::new();
    let mut checked = 0;
    for backend in [BackendKind::Ort, BackendKind::OpenVino] {
        if ort_missing_skip(test, backend == BackendKind::OpenVino) {
            continue;
        }
        for family in families() {
            if ipfs_accelerate::export::graph_files(family.model_type).is_none() {
                continue;
            }
            let check =
                Check::for_family(family.skill.name(), family.media, family.decoding).unwrap();
            let home = tempfile::tempdir().unwrap();
            let dir = home.path().join(family.fixture);
            copy_dir(&fixture_model(family.fixture), &dir).unwrap();
            std::fs::remove_dir_all(dir.join("onnx")).ok();
            let r = reference(family.fixture);
            let model = ModelRef::LocalDir(dir.clone());
            for (run, source) in [(1, Layer::Export), (2, Layer::Cache)] {
                let loader = loader(home.path());
                let (answer, (ran, files)) = answer_on(&loader, &model, &dir, check, &r, backend);
                let key = format!("{} on {backend}, load {run}", family.model_type);
                assert_eq!(ran, backend, "{key}");
                let graphs: Vec<&ResolvedFile> = files
                    .iter()
                    .filter(|f| f.file.starts_with("onnx/"))
                    .collect();
                assert!(!graphs.is_empty(), "{key}: no graph among {files:?}");
                assert!(
                    graphs.iter().all(|g| g.source == source),
                    "{key}: graphs from {graphs:?}, expected {source}"
                );
                let exports = loader.store().session_stats()["export"].hits;
                assert_eq!(exports, u64::from(run == 1), "{key}: exports");
                let (exact, max_abs) = parity(check, &answer, &r, family.fixture);
                eprintln!("{key}: ids/text exact: {exact}, max |Δ| {max_abs:.2e}");
                if !exact || max_abs > TOLERANCE {
                    failures.push(format!(
                        "{key}: ids/text exact {exact}, max |Δ| {max_abs:e}"
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if checked > 0 {
        assert!(checked >= 6, "{checked} exportable families");
    }
}
