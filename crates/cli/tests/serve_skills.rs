//! Every skill through the server, checked against the command line on the
//! same models (so these run without Python; `openai_client.rs` runs the
//! official client against the same routes): chat whole and streamed,
//! vision chat, transcription uploads, similarity, media embeddings,
//! `/v1/models`, and the errors bad requests get.

#![allow(clippy::unwrap_used)]

mod common;
use base64::Engine;
use common::*;
use ipfs_accelerate_tests::serve::{assert_json_error, multipart, FormFile, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A form's text fields and its file part.
type Upload<'a> = (&'a [(&'a str, &'a str)], Option<FormFile<'a>>);

/// New tokens at most, for every generation.
const NEW_TOKENS: usize = 8;

/// A server for `models` (the first is `--model`'s, the rest extra ones).
fn serve(home: tempfile::TempDir, models: &[&Path]) -> Server {
    let mut extra = Vec::new();
    for model in &models[1..] {
        extra.push("--model".to_owned());
        extra.push(model.to_str().unwrap().to_owned());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    Server::start(cli(home.path()), home, models[0], &extra)
}

fn name(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

fn base64_of(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

fn data_url(mime: &str, path: &Path) -> String {
    format!("data:{mime};base64,{}", base64_of(path))
}

/// The text of a chat stream's deltas, after checking its shape: the role
/// first, one `finish_reason`, and the usage chunk last.
fn joined_chat_stream(events: &[Value]) -> (String, String, Value) {
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = events.last().unwrap();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    let mut finish = Vec::new();
    let mut text = String::new();
    for event in &events[..events.len() - 1] {
        assert_eq!(event["object"], "chat.completion.chunk");
        let choice = &event["choices"][0];
        if let Some(piece) = choice["delta"]["content"].as_str() {
            text.push_str(piece);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish.push(reason.to_owned());
        }
    }
    assert_eq!(finish.len(), 1, "one finish_reason: {events:?}");
    (text, finish.remove(0), usage["usage"].clone())
}

#[test]
fn chat_equals_generate_chat_whole_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let llama = llama_with_chat_template(dir.path());
    let gpt2 = fixture_model("gpt2");
    let bert = fixture_model("bert");
    let home = tempfile::tempdir().unwrap();
    let want = greedy(
        cli(home.path()),
        "generate",
        &llama,
        "What is the capital of France?",
        NEW_TOKENS,
        &["--chat"],
    );
    let server = serve(home, &[&llama, &gpt2, &bert]);
    let request = json!({
        "model": name(&llama),
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": NEW_TOKENS,
        "temperature": 0,
    });
    let (s, whole) = server.post("/v1/chat/completions", &request.to_string());
    assert_eq!(s, 200, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    assert_eq!(whole["choices"][0]["message"]["content"], want["text"]);
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["prompt_tokens"], want["prompt_tokens"]);
    assert_eq!(whole["usage"]["completion_tokens"], NEW_TOKENS);

    // Content parts of text only are joined into the template's string.
    let mut parts = request.clone();
    parts["messages"][0]["content"] =
        json!([{"type": "text", "text": "What is the capital of France?"}]);
    parts["max_completion_tokens"] = json!(NEW_TOKENS);
    let (s, same) = server.post("/v1/chat/completions", &parts.to_string());
    assert_eq!(s, 200, "{same}");
    assert_eq!(
        same["choices"][0]["message"],
        whole["choices"][0]["message"]
    );

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (s, events) = server.post_events("/v1/chat/completions", &streamed);
    assert_eq!(s, 200);
    let (text, finish, usage) = joined_chat_stream(&events);
    assert_eq!(text, want["text"].as_str().unwrap());
    assert_eq!(finish, "length");
    assert_eq!(usage, whole["usage"]);

    // Refusals: JSON errors with the right status, streamed or not.
    let chat = |model: &str, content: Value| json!({"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 2});
    let err = server.post_error(
        "/v1/chat/completions",
        &chat(&name(&gpt2), json!("hi")),
        400,
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chat template"),
        "{err}"
    );
    server.post_error(
        "/v1/chat/completions",
        &chat(&name(&bert), json!("hi")),
        400,
    );
    server.post_error("/v1/chat/completions", &chat("no/such", json!("hi")), 404);
    let mut streamed_missing = chat("no/such", json!("hi"));
    streamed_missing["stream"] = json!(true);
    let (s, body) = server.post_events("/v1/chat/completions", &streamed_missing);
    assert_json_error(s, &body[0], 404);
    let image = json!([{"type": "image_url", "image_url": {"url": data_url("image/png", &fixture_model("clip").join("input.png"))}}]);
    server.post_error("/v1/chat/completions", &chat(&name(&llama), image), 400);
    let mut two = chat(&name(&llama), json!("hi"));
    two["n"] = json!(2);
    server.post_error("/v1/chat/completions", &two, 400);
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
}

#[test]
fn vision_chat_equals_caption_of_the_rendered_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let llava = llava_with_chat_template(dir.path());
    let home = tempfile::tempdir().unwrap();
    // LLaVA-1.5's template renders [image, text P] as this.
    let prompt = "USER: <image>\nWhat is shown in this image? ASSISTANT:";
    let tokens = NEW_TOKENS.to_string();
    let want = caption(
        cli(home.path()),
        &llava,
        prompt,
        &["--greedy", "--max-new-tokens", &tokens],
    );
    let server = serve(home, &[&llava]);
    let image = data_url("image/png", &llava.join("input.png"));
    let request = json!({
        "model": name(&llava),
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image}},
            {"type": "text", "text": "What is shown in this image?"},
        ]}],
        "max_tokens": NEW_TOKENS,
        "temperature": 0,
    });
    let (s, b) = server.post("/v1/chat/completions", &request.to_string());
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["choices"][0]["message"]["content"], want["text"]);
    assert_eq!(b["usage"]["prompt_tokens"], want["prompt_tokens"]);

    // Bad images: one-line 400s, and the server keeps serving.
    let mut corrupt = request.clone();
    corrupt["messages"][0]["content"][0]["image_url"]["url"] =
        json!("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA");
    let err = server.post_error("/v1/chat/completions", &corrupt, 400);
    assert!(!err["error"]["message"].as_str().unwrap().contains('\n'));
    let mut remote = request.clone();
    remote["messages"][0]["content"][0]["image_url"]["url"] = json!("https://example.com/a.png");
    server.post_error("/v1/chat/completions", &remote, 400);
    let mut no_image = request.clone();
    no_image["messages"][0]["content"] = json!("What is shown?");
    server.post_error("/v1/chat/completions", &no_image, 400);
    let (s, again) = server.post("/v1/chat/completions", &request.to_string());
    assert_eq!(s, 200);
    assert_eq!(again["choices"][0]["message"], b["choices"][0]["message"]);
}

#[test]
fn transcription_uploads_equal_transcribe() {
    let whisper = fixture_model("whisper");
    let wav2vec2 = fixture_model("wav2vec2");
    let home = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for model in [&whisper, &wav2vec2] {
        want.push(transcribe(
            cli(home.path()),
            model,
            &model.join("input.wav"),
            &[],
        ));
    }
    let server = serve(home, &[&whisper, &wav2vec2]);
    for (model, want) in [&whisper, &wav2vec2].into_iter().zip(&want) {
        let wav = std::fs::read(model.join("input.wav")).unwrap();
        let model_name = name(model);
        let upload = |format: &str| {
            let (content_type, body) = multipart(
                &[("model", &model_name), ("response_format", format)],
                Some(("file", "input.wav", &wav)),
            );
            server.post_bytes("/v1/audio/transcriptions", &content_type, &body)
        };
        let (s, body) = upload("json");
        assert_eq!(s, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["text"], want["text"]);
        let (s, text) = upload("text");
        assert_eq!(s, 200);
        assert_eq!(text, want["text"].as_str().unwrap());
        let (s, body) = upload("verbose_json");
        assert_eq!(s, 200);
        let verbose: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(verbose["text"], want["text"]);
        assert!(verbose["duration"].as_f64().unwrap() > 0.0, "{verbose}");
        let (s, body) = upload("srt-please");
        assert_eq!(s, 400, "{body}");
    }
    let whisper_name = name(&whisper);
    assert_eq!(want[0]["language"], "en");

    // Word timestamps (wav2vec2): the command line's `--timestamps` words.
    let home = tempfile::tempdir().unwrap();
    let timed = transcribe(
        cli(home.path()),
        &wav2vec2,
        &wav2vec2.join("input.wav"),
        &["--timestamps"],
    );
    let wav = std::fs::read(wav2vec2.join("input.wav")).unwrap();
    let (content_type, body) = multipart(
        &[
            ("model", &name(&wav2vec2)),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
        ],
        Some(("file", "input.wav", &wav)),
    );
    let (s, body) = server.post_bytes("/v1/audio/transcriptions", &content_type, &body);
    assert_eq!(s, 200, "{body}");
    let verbose: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verbose["words"], timed["words"]);

    // A FLAC upload of the same clip gives the same text.
    let flac = std::fs::read(fixtures_dir().join("audio").join("input.flac")).unwrap();
    let (content_type, body) = multipart(
        &[("model", &whisper_name)],
        Some(("file", "input.flac", &flac)),
    );
    let (s, body) = server.post_bytes("/v1/audio/transcriptions", &content_type, &body);
    assert_eq!(s, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["text"], want[0]["text"]);

    // Bad uploads: one-line 400s (415 without a form).
    let wav = std::fs::read(whisper.join("input.wav")).unwrap();
    let cases: [Upload<'_>; 4] = [
        (&[("model", &whisper_name)], None),
        (&[], Some(("file", "a.wav", &wav))),
        (
            &[("model", &whisper_name)],
            Some(("file", "a.png", b"\x89PNG\r\n\x1a\n")),
        ),
        (
            &[("model", &whisper_name), ("language", "fr")],
            Some(("file", "a.wav", &wav)),
        ),
    ];
    for (fields, file) in cases {
        let (content_type, body) = multipart(fields, file);
        let (s, body) = server.post_bytes("/v1/audio/transcriptions", &content_type, &body);
        assert_eq!(s, 400, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(!error["error"]["message"].as_str().unwrap().contains('\n'));
    }
    let (s, _) = server.post_bytes("/v1/audio/transcriptions", "application/json", b"{}");
    assert_eq!(s, 415);

    // Audio longer than the model takes at once is transcribed whole
    // (Whisper's long-form decoding, wav2vec2's chunks):
    // `transcribe_long.rs`.
}

#[test]
fn similarity_and_media_embeddings_equal_the_command_line() {
    let clip = fixture_model("clip");
    let clap = fixture_model("clap");
    let xclip = fixture_model("xclip");
    let home = tempfile::tempdir().unwrap();
    let image = clip.join("input.png");
    let audio = clap.join("input.wav");
    let frames_dir = xclip.join("frames");
    let texts = |f: &str| Fixture::new(f).texts();
    let want_clip = similarity(
        cli(home.path()),
        &clip,
        ("--image", &image),
        &texts("clip"),
        &[],
    );
    let want_clap = similarity(
        cli(home.path()),
        &clap,
        ("--audio", &audio),
        &texts("clap"),
        &[],
    );
    let want_xclip = similarity(
        cli(home.path()),
        &xclip,
        ("--video", &frames_dir),
        &texts("xclip"),
        &[],
    );
    let server = serve(home, &[&clip, &clap, &xclip]);
    let mut frames: Vec<PathBuf> = std::fs::read_dir(&frames_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    frames.sort();
    let frames: Vec<String> = frames.iter().map(|f| base64_of(f)).collect();
    for (path, model, media, want, fixture) in [
        (
            "/similarity",
            &clip,
            json!({"image": data_url("image/png", &image)}),
            &want_clip,
            "clip",
        ),
        (
            "/v1/similarity",
            &clap,
            json!({"audio": base64_of(&audio)}),
            &want_clap,
            "clap",
        ),
        (
            "/similarity",
            &xclip,
            json!({"video": frames}),
            &want_xclip,
            "xclip",
        ),
    ] {
        let mut request = media.clone();
        request["model"] = json!(name(model));
        request["texts"] = json!(texts(fixture));
        let (s, b) = server.post(path, &request.to_string());
        assert_eq!(s, 200, "{fixture}: {b}");
        assert_eq!(b["backend"], "cpu");
        for key in ["logits", "probs"] {
            assert_close(
                &format!("{fixture} {key}"),
                &f32_list(&b[key]),
                &f32_list(&want[key]),
                1e-5,
            );
        }
    }

    // Embeddings in the shared space: the similarity command's vectors.
    let (s, b) = server.post(
        "/v1/embeddings",
        &json!({"model": name(&clip), "input": [texts("clip")[0], {"image": data_url("image/png", &image)}]})
            .to_string(),
    );
    assert_eq!(s, 200, "{b}");
    let text_rows = Array::from_json(&want_clip["outputs"]["text_embeds"]).rows();
    let image_rows = Array::from_json(&want_clip["outputs"]["image_embeds"]).rows();
    assert_close(
        "clip text",
        &f32_list(&b["data"][0]["embedding"]),
        &text_rows[0],
        1e-5,
    );
    assert_close(
        "clip image",
        &f32_list(&b["data"][1]["embedding"]),
        &image_rows[0],
        1e-5,
    );
    let (s, b) = server.post(
        "/v1/embeddings",
        &json!({"model": name(&clap), "input": [{"audio": data_url("audio/wav", &audio)}]})
            .to_string(),
    );
    assert_eq!(s, 200, "{b}");
    let audio_rows = Array::from_json(&want_clap["outputs"]["audio_embeds"]).rows();
    assert_close(
        "clap audio",
        &f32_list(&b["data"][0]["embedding"]),
        &audio_rows[0],
        1e-5,
    );

    // Wrong media for the model, X-CLIP embeddings, two media at once,
    // corrupt media: 400s.
    let png = data_url("image/png", &image);
    for (path, body) in [
        (
            "/similarity",
            json!({"model": name(&clap), "texts": ["a"], "image": png}),
        ),
        (
            "/similarity",
            json!({"model": name(&clip), "texts": ["a"], "image": png, "audio": "UklGRg=="}),
        ),
        (
            "/similarity",
            json!({"model": name(&clip), "texts": [], "image": png}),
        ),
        (
            "/similarity",
            json!({"model": name(&clip), "texts": ["a"], "image": "bm90IGFuIGltYWdl"}),
        ),
        (
            "/v1/embeddings",
            json!({"model": name(&xclip), "input": ["a"]}),
        ),
        (
            "/v1/embeddings",
            json!({"model": name(&clip), "input": [{"audio": base64_of(&audio)}]}),
        ),
        (
            "/v1/embeddings",
            json!({"model": name(&clip), "input": [{"video": []}]}),
        ),
    ] {
        server.post_error(path, &body, 400);
    }
}

#[test]
fn models_lists_every_served_model_with_its_task() {
    let bert = fixture_model("bert");
    let whisper = fixture_model("whisper");
    let clip = fixture_model("clip");
    let home = tempfile::tempdir().unwrap();
    let server = serve(home, &[&bert, &whisper, &clip]);
    let (s, body) = server.get("/v1/models");
    assert_eq!(s, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["object"], "list");
    let mut tasks: Vec<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            assert!(m["created"].as_u64().unwrap() > 0);
            (
                m["id"].as_str().unwrap().to_owned(),
                m["task"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tasks.sort();
    let mut want = vec![
        (name(&bert), "text_embedding".to_owned()),
        (name(&whisper), "speech_recognition".to_owned()),
        (name(&clip), "similarity".to_owned()),
    ];
    want.sort();
    assert_eq!(tasks, want);
    // Ids with slashes (paths, Hub ids) are one path parameter.
    let (s, body) = server.get(&format!("/v1/models{}", name(&whisper)));
    assert_eq!(s, 200, "{body}");
    let one: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["id"], name(&whisper));
    let (s, body) = server.get("/v1/models/no/such");
    assert_eq!(s, 404, "{body}");
    // /endpoints covers every model.
    let (_, body) = server.get("/endpoints");
    let endpoints: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(endpoints["endpoints"].as_array().unwrap().len(), 3);
}

#[test]
fn gguf_chat_uses_the_files_template() {
    let Some(gguf) = smollm2_or_skip("gguf_chat_uses_the_files_template") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let question = "What is the capital of France?";
    let want = greedy(
        cli(home.path()),
        "generate",
        &gguf,
        question,
        12,
        &["--chat"],
    );
    let server = serve(home, &[&gguf]);
    let request = json!({
        "model": name(&gguf),
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 12,
        "temperature": 0,
        "stream": true,
    });
    let (s, events) = server.post_events("/v1/chat/completions", &request);
    assert_eq!(s, 200);
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, want["text"].as_str().unwrap());
    assert!(!text.trim().is_empty());
}

/// `/v1/audio/translations`: Whisper's `translate` task, the command
/// line's `--task translate` answer.
#[test]
fn translation_uploads_equal_transcribe_translate() {
    let multilingual = fixtures_dir().join("models/variants/whisper_multilingual");
    let home = tempfile::tempdir().unwrap();
    let audio = multilingual.join("input.wav");
    let want = transcribe(
        cli(home.path()),
        &multilingual,
        &audio,
        &["--task", "translate"],
    );
    let server = serve(home, &[&multilingual]);
    let wav = std::fs::read(&audio).unwrap();
    let (content_type, body) = multipart(
        &[
            ("model", &name(&multilingual)),
            ("response_format", "verbose_json"),
        ],
        Some(("file", "input.wav", &wav)),
    );
    let (s, body) = server.post_bytes("/v1/audio/translations", &content_type, &body);
    assert_eq!(s, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["text"], want["text"]);
    assert_eq!(answer["task"], "translate");
}
