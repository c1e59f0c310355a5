//! The official OpenAI Python client (`openai` from PyPI, in the venv
//! `cargo xtask ci` makes; `IPFS_ACCELERATE_OPENAI_PYTHON`) against one
//! server that serves every kind of model: models list, chat (whole and
//! streamed), completions, text and image embeddings, transcription (json,
//! text, verbose_json, srt, and segments), vision chat, similarity through the client's generic
//! `post`, and the errors it maps to exceptions. The expected answers come
//! from the command line on the same models; `openai_client.py` compares.

#![allow(clippy::unwrap_used)]

mod common;
use base64::Engine;
use common::*;
use ipfs_accelerate_tests::serve::Server;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python with `openai` installed.
const PYTHON_VAR: &str = "IPFS_ACCELERATE_OPENAI_PYTHON";
/// The checks, run with that Python.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");

const CHAT_PROMPT: &str = "What is the capital of France?";
const COMPLETION_PROMPT: &str = "The river flows from the mountains";
const VISION_PROMPT: &str = "What is shown in this image?";
/// New tokens at most, for every generation.
const NEW_TOKENS: usize = 8;

/// The Python in [`PYTHON_VAR`] when it imports `openai`, or `None` after
/// reporting the skip of `test`.
fn openai_python_or_skip(test: &str) -> Option<PathBuf> {
    let python = match std::env::var_os(PYTHON_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let reason = format!(
                "{PYTHON_VAR} is not set (a Python with `openai`; `cargo xtask ci` makes one under target/openai-venv)"
            );
            skip(test, &reason);
            return None;
        }
    };
    let probe = Command::new(&python)
        .args(["-c", "import openai; print(openai.__version__)"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.trim().lines().last().unwrap_or("").to_owned();
            skip(
                test,
                &format!("{} cannot import openai ({last})", python.display()),
            );
            None
        }
        Err(e) => {
            skip(test, &format!("cannot run {} ({e})", python.display()));
            None
        }
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

/// `data:image/png;base64,...` of a PNG file.
fn data_url(png: &Path) -> String {
    let bytes = std::fs::read(png).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("data:image/png;base64,{encoded}")
}

/// The answers the server must give, computed by the command line (in
/// `home`) on the same models.
struct Models {
    llama: PathBuf,
    llava: PathBuf,
    bert: PathBuf,
    clip: PathBuf,
    whisper: PathBuf,
    gpt2: PathBuf,
}

fn expected(home: &Path, m: &Models) -> Value {
    let generation_tokens = NEW_TOKENS.to_string();
    let chat = greedy(
        cli(home),
        "generate",
        &m.llama,
        CHAT_PROMPT,
        NEW_TOKENS,
        &["--chat"],
    );
    let completion = greedy(
        cli(home),
        "generate",
        &m.llama,
        COMPLETION_PROMPT,
        NEW_TOKENS,
        &[],
    );

    let texts = Fixture::new("bert").texts();
    let embedded = embed(cli(home), &m.bert, &texts, &[]);

    let clip_png = m.clip.join("input.png");
    let clip_texts = Fixture::new("clip").texts();
    let scores = similarity(cli(home), &m.clip, ("--image", &clip_png), &clip_texts, &[]);
    let image_embeds = &scores["outputs"]["image_embeds"];
    assert_eq!(
        shape_of(&image_embeds["shape"])[0],
        1,
        "one image: {image_embeds}"
    );

    // The server's default for a transcription request (which carries no
    // token limit) is the command's.
    let audio = m.whisper.join("input.wav");
    let transcription = transcribe(cli(home), &m.whisper, &audio, &[]);
    // Segments and subtitles: what `--timestamps` and `--format srt` give.
    let timed = transcribe(cli(home), &m.whisper, &audio, &["--timestamps"]);
    let srt = stdout_of(
        cli(home)
            .args(["transcribe", "--format", "srt", "--model"])
            .arg(&m.whisper)
            .arg(&audio),
    );

    // What the server renders from [{image}, {text: P}] with LLaVA-1.5's
    // template: images first, each text part followed by a space.
    let rendered = format!("USER: <image>\n{VISION_PROMPT} ASSISTANT:");
    assert_eq!(
        rendered,
        reference("llava")["inputs"]["prompt"].as_str().unwrap()
    );
    let vision = caption(
        cli(home),
        &m.llava,
        &rendered,
        &["--greedy", "--max-new-tokens", &generation_tokens],
    );

    let served: Vec<String> = [&m.llama, &m.bert, &m.clip, &m.whisper, &m.llava, &m.gpt2]
        .iter()
        .map(|p| path_str(p))
        .collect();
    json!({
        "models": served,
        "chat": {
            "model": path_str(&m.llama),
            "prompt": CHAT_PROMPT,
            "max_tokens": NEW_TOKENS,
            "text": chat["text"],
            "prompt_tokens": chat["prompt_tokens"],
        },
        "completion": {
            "model": path_str(&m.llama),
            "prompt": COMPLETION_PROMPT,
            "max_tokens": NEW_TOKENS,
            "text": completion["text"],
        },
        "embed": {
            "model": path_str(&m.bert),
            "texts": texts,
            "vectors": embedded["embeddings"],
        },
        "image_embed": {
            "model": path_str(&m.clip),
            "data_url": data_url(&clip_png),
            "vector": image_embeds["data"],
        },
        "transcription": {
            "model": path_str(&m.whisper),
            "file": path_str(&audio),
            "text": transcription["text"],
            "segments": timed["segments"],
            "srt": srt,
        },
        "vision": {
            "model": path_str(&m.llava),
            "data_url": data_url(&m.llava.join("input.png")),
            "prompt": VISION_PROMPT,
            "max_tokens": NEW_TOKENS,
            "text": vision["text"],
        },
        "similarity": {
            "model": path_str(&m.clip),
            "texts": clip_texts,
            "data_url": data_url(&clip_png),
            "logits": scores["logits"],
            "probs": scores["probs"],
        },
        "errors": true,
        "no_template_model": path_str(&m.gpt2),
    })
}

#[test]
fn official_openai_python_client_gets_the_command_lines_answers() {
    let test = "official_openai_python_client_gets_the_command_lines_answers";
    let Some(python) = openai_python_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let models = Models {
        llama: llama_with_chat_template(dir.path()),
        llava: llava_with_chat_template(dir.path()),
        bert: fixture_model("bert"),
        clip: fixture_model("clip"),
        whisper: fixture_model("whisper"),
        gpt2: fixture_model("gpt2"),
    };
    let home = tempfile::tempdir().unwrap();
    let want = expected(home.path(), &models);
    let expected_file = dir.path().join("expected.json");
    std::fs::write(&expected_file, serde_json::to_string_pretty(&want).unwrap()).unwrap();

    let others: Vec<String> = [
        &models.bert,
        &models.clip,
        &models.whisper,
        &models.llava,
        &models.gpt2,
    ]
    .iter()
    .map(|p| path_str(p))
    .collect();
    let extra: Vec<&str> = others
        .iter()
        .flat_map(|m| ["--model", m.as_str()])
        .collect();
    let server_home = tempfile::tempdir().unwrap();
    let server = Server::start(cli(server_home.path()), server_home, &models.llama, &extra);

    // A clean environment: no OPENAI_* settings or proxies of the caller.
    let out = Command::new(&python)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("PYTHONUNBUFFERED", "1")
        .arg(SCRIPT)
        .arg(&server.base)
        .arg(&expected_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai_client.py exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
}
