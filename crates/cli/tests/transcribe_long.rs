//! Long recordings through the command line and the server: a 75 s
//! recording built from the Whisper fixture's clip (as
//! `fixtures/references/make_longform_references.py` builds it) gives
//! transformers' long-form token ids; `--format srt` / `vtt` parse with the
//! Python `srt` and `webvtt-py` parsers (the virtual environment `cargo
//! xtask ci` makes; `IPFS_ACCELERATE_SUBTITLES_PYTHON`) and their cues equal
//! the segments; the server's `srt`, `vtt` and `verbose_json` segments equal
//! the command line's; wav2vec2 decodes a recording longer than it takes at
//! once in chunks.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate::skills::subtitles::cue_text;
use ipfs_accelerate_tests::serve::{multipart, Server};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const PYTHON_VAR: &str = "IPFS_ACCELERATE_SUBTITLES_PYTHON";

/// Parses `srt` and `vtt` files with the Python parsers and prints each
/// file's cues as [start seconds, end seconds, text].
const PARSE: &str = r#"
import json, sys, srt, webvtt

def seconds(stamp):
    hours, minutes, rest = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)

with open(sys.argv[1], encoding="utf-8") as f:
    subrip = [[c.start.total_seconds(), c.end.total_seconds(), c.content] for c in srt.parse(f.read())]
vtt = [[seconds(c.start), seconds(c.end), c.text] for c in webvtt.read(sys.argv[2])]
print(json.dumps({"srt": subrip, "vtt": vtt}))
"#;

fn subtitles_python_or_skip(test: &str) -> Option<PathBuf> {
    match std::env::var_os(PYTHON_VAR) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            skip(
                test,
                &format!("{PYTHON_VAR} is not set (a Python with srt and webvtt-py; `cargo xtask ci` makes one under target/subtitles-venv)"),
            );
            None
        }
    }
}

/// `transcribe --format FORMAT --max-new-tokens 128 --model MODEL AUDIO`.
fn subtitles(home: &Path, model: &Path, audio: &Path, format: &str) -> String {
    stdout_of(
        cli(home)
            .args(["transcribe", "--format", format, "--max-new-tokens", "128"])
            .arg("--model")
            .arg(model)
            .arg(audio),
    )
}

fn upload(server: &Server, model: &Path, wav: &[u8], fields: &[(&str, &str)]) -> String {
    let name = model.to_str().unwrap();
    let mut all = vec![("model", name)];
    all.extend_from_slice(fields);
    let (content_type, body) = multipart(&all, Some(("file", "long.wav", wav)));
    let (status, body) = server.post_bytes("/v1/audio/transcriptions", &content_type, &body);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn long_audio_gives_transformers_ids_and_subtitles_that_parse_into_its_segments() {
    let Some(python) = subtitles_python_or_skip("transcribe_long") else {
        return;
    };
    let whisper = fixture_model("whisper");
    let reference = shared_reference("longform.json");
    let want = &reference["whisper"]["whisper"]["75s"]["sequential"];
    let home = tempfile::tempdir().unwrap();
    let wav = home.path().join("long.wav");
    write_long_wav(&whisper.join("input.wav"), 75, &wav);

    let answer = transcribe(
        cli(home.path()),
        &whisper,
        &wav,
        &["--max-new-tokens", "128"],
    );
    assert_eq!(answer["token_ids"], want["sequences"]);
    assert_eq!(answer["text"], want["text"]);
    let segments = answer["segments"].as_array().unwrap();
    assert_eq!(segments.len(), want["segments"].as_array().unwrap().len());

    // Subtitles: parsed by the Python parsers, one cue per segment.
    let srt = subtitles(home.path(), &whisper, &wav, "srt");
    let vtt = subtitles(home.path(), &whisper, &wav, "vtt");
    let (srt_file, vtt_file) = (home.path().join("a.srt"), home.path().join("a.vtt"));
    std::fs::write(&srt_file, &srt).unwrap();
    std::fs::write(&vtt_file, &vtt).unwrap();
    let parsed: Value = serde_json::from_str(&stdout_of(
        Command::new(&python)
            .args(["-c", PARSE])
            .arg(&srt_file)
            .arg(&vtt_file),
    ))
    .unwrap();
    for format in ["srt", "vtt"] {
        let cues = parsed[format].as_array().unwrap();
        assert_eq!(cues.len(), segments.len(), "{format}: one cue per segment");
        for (i, (cue, segment)) in cues.iter().zip(segments).enumerate() {
            for (at, field) in [(0, "start"), (1, "end")] {
                let want = (segment[field].as_f64().unwrap() * 1000.0).round() / 1000.0;
                let got = cue[at].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-6,
                    "{format} cue {i} {field}: {got}, segment {want}"
                );
            }
            assert_eq!(
                cue[2].as_str().unwrap(),
                cue_text(segment["text"].as_str().unwrap()),
                "{format} cue {i} text"
            );
        }
    }

    // The server: the same subtitles, and the segments in verbose_json.
    let server = Server::start(
        cli(home.path()),
        tempfile::tempdir().unwrap(),
        &whisper,
        &[],
    );
    let bytes = std::fs::read(&wav).unwrap();
    assert_eq!(
        upload(&server, &whisper, &bytes, &[("response_format", "srt")]),
        srt
    );
    assert_eq!(
        upload(&server, &whisper, &bytes, &[("response_format", "vtt")]),
        vtt
    );
    let verbose: Value = serde_json::from_str(&upload(
        &server,
        &whisper,
        &bytes,
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "segment"),
        ],
    ))
    .unwrap();
    assert_eq!(verbose["text"], want["text"]);
    let served = verbose["segments"].as_array().unwrap();
    assert_eq!(served.len(), segments.len());
    for (s, c) in served.iter().zip(segments) {
        for field in ["id", "seek", "start", "end", "text", "tokens"] {
            assert_eq!(s[field], c[field], "verbose_json segment {field}");
        }
    }
}

#[test]
fn wav2vec2_decodes_recordings_longer_than_it_takes_at_once_in_chunks() {
    let wav2vec2 = fixture_model("wav2vec2");
    let reference = shared_reference("longform.json");
    let want = &reference["wav2vec2"]["75s"];
    let home = tempfile::tempdir().unwrap();
    let wav = home.path().join("long.wav");
    write_long_wav(&wav2vec2.join("input.wav"), 75, &wav);
    // The pipeline's chunk_length_s=10: its text.
    let answer = transcribe(cli(home.path()), &wav2vec2, &wav, &["--chunk-length", "10"]);
    assert_eq!(answer["text"], want["text"]);
    // No chunk length named: 30 s chunks; the server says the same.
    let default = transcribe(cli(home.path()), &wav2vec2, &wav, &[]);
    let server = Server::start(
        cli(home.path()),
        tempfile::tempdir().unwrap(),
        &wav2vec2,
        &[],
    );
    let bytes = std::fs::read(&wav).unwrap();
    let served: Value = serde_json::from_str(&upload(&server, &wav2vec2, &bytes, &[])).unwrap();
    assert_eq!(served["text"], default["text"]);
    // Subtitles for a CTC model: one cue per word.
    let vtt = subtitles(home.path(), &wav2vec2, &wav, "vtt");
    let timed = transcribe(cli(home.path()), &wav2vec2, &wav, &["--timestamps"]);
    let cues = vtt.matches(" --> ").count();
    assert_eq!(cues, timed["words"].as_array().unwrap().len());
}
