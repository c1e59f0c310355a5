//! One family's standard request at real size, on one backend, in a process
//! of its own (so its peak memory is the backend's): what `cargo xtask
//! bench models` runs for every family × backend (xtask/src/bench_models.rs
//! describes the requests and compares with PyTorch eager).
//!
//! `models export <model_dir> <cache_dir> <out.json>`: exports the model's
//! ONNX graphs on first use into `cache_dir` (a fresh cache), timed.
//!
//! `models request <family> <backend> <model_dir> <cache_dir> <request.json>
//! <out.json>`: loads the model on `backend` (ONNX graphs from `cache_dir`),
//! runs the request once to warm up, then `repeats` times; writes the load
//! time, every request's time, the answer (for the output check) and the
//! process's peak resident memory.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_export::{cached_export, EXPORT_MANIFEST_ID, PROVENANCE_FILE};
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::media::{read_frames, read_image, read_wav};
use ipfs_accelerate_skills::{
    CaptionOptions, GenerateOptions, ImageCaptioner, Media, SimilarityModel, SimilarityOptions,
    SpeechRecognizer, Text2TextGenerator, TextEmbedder, TextGenerator, TranscribeOptions,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn loader(cache: &Path) -> Loader {
    Loader::builder()
        .cache_dir(cache.join("cache"))
        .hub_cache_dir(cache.join("hub"))
        .build()
        .unwrap()
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn write(out: &Path, value: &Value) {
    std::fs::write(out, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn export(model: &Path, cache: &Path, out: &Path) {
    let loader = loader(cache);
    let started = Instant::now();
    let export = match cached_export(&loader, &ModelRef::LocalDir(model.to_owned()), true) {
        Ok(export) => export,
        // A model the exporter refuses (over 2 GiB): the ONNX rows say why.
        Err(e) => return write(out, &json!({ "error": e.to_string() })),
    };
    let seconds = started.elapsed().as_secs_f64();
    // The graphs and their external data files, as the export's manifest
    // lists them.
    let bytes: u64 = loader
        .store()
        .manifest(EXPORT_MANIFEST_ID, &export.key)
        .ok()
        .flatten()
        .map(|m| {
            m.files
                .iter()
                .filter(|f| f.path != PROVENANCE_FILE)
                .map(|f| f.size)
                .sum()
        })
        .unwrap_or(0);
    write(
        out,
        &json!({
            "export_s": seconds,
            "graph_bytes": bytes,
            "graphs": export.graphs.iter().map(|g| g.file.clone()).collect::<Vec<_>>(),
            "peak_rss_kib": peak_rss_kib(),
        }),
    );
}

/// A loaded model and its request.
type Request = Box<dyn FnMut() -> Value>;

fn greedy(new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: new_tokens,
        ..GenerateOptions::default()
    }
}

/// Loads `family`'s model on `backend`; returns the backend that ran and
/// the request, or why it could not load.
fn load(
    family: &str,
    backend: BackendKind,
    loader: &Loader,
    model: &ModelRef,
    r: &Value,
) -> Result<(BackendKind, Request), String> {
    let err = |e: ipfs_accelerate_skills::SkillError| e.to_string();
    let texts: Vec<String> = serde_json::from_value(r["texts"].clone()).unwrap_or_default();
    let new_tokens = r["new_tokens"].as_u64().unwrap_or(32) as usize;
    match family {
        "bert" | "bert-tiny" => {
            let m = TextEmbedder::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            Ok((
                ran,
                Box::new(move || {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    json!({ "embeddings": m.embed(&refs).unwrap() })
                }),
            ))
        }
        "gpt2" | "opt" | "llama" | "llama-1b" => {
            let m = TextGenerator::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let prompt = r["prompt"].as_str().unwrap().to_owned();
            Ok((
                ran,
                Box::new(move || {
                    let g = m
                        .generate(&prompt, &greedy(new_tokens), &mut |_| {})
                        .unwrap();
                    json!({ "token_ids": g.token_ids, "prompt_tokens": g.prompt_tokens })
                }),
            ))
        }
        "t5" | "t5-tiny" => {
            let m = Text2TextGenerator::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let text = texts[0].clone();
            Ok((
                ran,
                Box::new(move || {
                    let g = m.generate(&text, &greedy(new_tokens), &mut |_| {}).unwrap();
                    json!({ "token_ids": g.token_ids })
                }),
            ))
        }
        "whisper" | "wav2vec2" => {
            let m = SpeechRecognizer::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let audio = read_wav(Path::new(r["audio"].as_str().unwrap())).unwrap();
            let options = TranscribeOptions {
                max_new_tokens: new_tokens,
                return_logits: family == "wav2vec2",
                ..TranscribeOptions::default()
            };
            Ok((
                ran,
                Box::new(move || {
                    let t = m.transcribe(&audio, &options).unwrap();
                    serde_json::to_value(t).unwrap()
                }),
            ))
        }
        "clip" => {
            let m = SimilarityModel::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let image = read_image(Path::new(r["image"].as_str().unwrap())).unwrap();
            Ok((
                ran,
                Box::new(move || {
                    let s = m
                        .score(Media::Image(&image), &texts, SimilarityOptions::default())
                        .unwrap();
                    json!({ "logits": s.logits })
                }),
            ))
        }
        "clap" => {
            let m = SimilarityModel::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let audio = read_wav(Path::new(r["audio_48k"].as_str().unwrap())).unwrap();
            Ok((
                ran,
                Box::new(move || {
                    let s = m
                        .score(Media::Audio(&audio), &texts, SimilarityOptions::default())
                        .unwrap();
                    json!({ "logits": s.logits })
                }),
            ))
        }
        "xclip" => {
            let m = SimilarityModel::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let frames = read_frames(Path::new(r["video"].as_str().unwrap())).unwrap();
            Ok((
                ran,
                Box::new(move || {
                    let s = m
                        .score(Media::Video(&frames), &texts, SimilarityOptions::default())
                        .unwrap();
                    json!({ "logits": s.logits })
                }),
            ))
        }
        "llava" | "llava_next" => {
            let m = ImageCaptioner::load(loader, model, backend).map_err(err)?;
            let ran = m.backend();
            let image = read_image(Path::new(r["image"].as_str().unwrap())).unwrap();
            let prompt = r["image_prompt"].as_str().unwrap().to_owned();
            Ok((
                ran,
                Box::new(move || {
                    let c = m
                        .caption(
                            &image,
                            &prompt,
                            &greedy(new_tokens),
                            CaptionOptions::default(),
                            &mut |_| {},
                        )
                        .unwrap();
                    json!({ "token_ids": c.generation.token_ids, "image_tokens": c.image_tokens })
                }),
            ))
        }
        other => Err(format!("no standard request for family '{other}'")),
    }
}

fn request(family: &str, backend: &str, model: &Path, cache: &Path, r: &Path, out: &Path) {
    let r: Value = serde_json::from_str(&std::fs::read_to_string(r).unwrap()).unwrap();
    let kind: BackendKind = backend.parse().unwrap();
    let loader = loader(cache);
    let model = ModelRef::LocalDir(model.to_owned());
    let started = Instant::now();
    let (ran, mut run) = match load(family, kind, &loader, &model, &r) {
        Ok(loaded) => loaded,
        Err(error) => {
            return write(
                out,
                &json!({ "family": family, "backend": backend, "error": error }),
            );
        }
    };
    let load_s = started.elapsed().as_secs_f64();
    let _ = run();
    let repeats = r["repeats"].as_u64().unwrap_or(3) as usize;
    let mut times = Vec::with_capacity(repeats);
    let mut answer = Value::Null;
    for _ in 0..repeats {
        let started = Instant::now();
        answer = run();
        times.push(started.elapsed().as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    write(
        out,
        &json!({
            "family": family,
            "backend": ran.to_string(),
            "load_s": load_s,
            "request_s": times,
            "median_s": sorted[sorted.len() / 2],
            "answer": answer,
            "peak_rss_kib": peak_rss_kib(),
        }),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let path = |i: usize| PathBuf::from(&args[i]);
    match args.first().map(String::as_str) {
        Some("export") if args.len() == 4 => export(&path(1), &path(2), &path(3)),
        Some("request") if args.len() == 7 => {
            request(&args[1], &args[2], &path(3), &path(4), &path(5), &path(6))
        }
        _ => eprintln!(
            "usage: models export <model_dir> <cache_dir> <out.json> | models request <family> \
             <backend> <model_dir> <cache_dir> <request.json> <out.json> \
             (run by `cargo xtask bench models`)"
        ),
    }
}
