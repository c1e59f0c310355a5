//! `POST /v1/audio/transcriptions` and `/v1/audio/translations` (OpenAI;
//! the latter answers in English, Whisper's `translate` task): a
//! `multipart/form-data` upload with `file` and `model`, and optionally
//! `language`, `response_format` (`json`, `text`, `verbose_json`, `srt`,
//! `vtt`), `timestamp_granularities[]` (`segment`: Whisper's `segments`;
//! `word`: wav2vec2's `words`; both in verbose_json) and `temperature` (0
//! only: decoding is greedy). Unknown fields are ignored, as for the JSON
//! routes. Audio longer than 30 s is transcribed whole (Whisper's
//! long-form decoding).
//!
//! The upload is read whole within `--upload-limit` and the body timeout,
//! then parsed; the audio is WAV (any PCM width or float), FLAC, MP3,
//! OGG/Vorbis or M4A/AAC, any rate, any channel count.

use super::ensure_ready;
use super::generation::parse_backend;
use crate::body::read_limited_to;
use crate::{media, ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfs_accelerate::{InferRequest, InferResponse, TranscribeOptions};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The parts of the form: text fields by name, and the file.
#[derive(Debug, Default)]
pub(crate) struct Form {
    fields: BTreeMap<String, String>,
    file: Option<Bytes>,
}

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    VerboseJson,
    Srt,
    Vtt,
}

pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    answer_upload(state, request, None).await
}

/// `POST /v1/audio/translations` (OpenAI): the same upload, answered in
/// English (Whisper's `translate` task).
pub async fn translations(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    answer_upload(state, request, Some("translate")).await
}

async fn answer_upload(
    state: Arc<AppState>,
    request: Request,
    task: Option<&'static str>,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let boundary = multer::parse_boundary(&content_type).map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected multipart/form-data with a file and a model field",
        )
    })?;
    let body = read_limited_to(request.into_body(), &state, state.upload_limit).await?;
    let form = parse_form(body, &boundary).await?;
    let model = form
        .fields
        .get("model")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("the form has no 'model' field"))?;
    let format = match form.fields.get("response_format").map(String::as_str) {
        None | Some("json") => Format::Json,
        Some("text") => Format::Text,
        Some("verbose_json") => Format::VerboseJson,
        Some("srt") => Format::Srt,
        Some("vtt") => Format::Vtt,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "response_format '{other}' is not supported (json, text, verbose_json, srt, vtt)"
            )))
        }
    };
    if let Some(temperature) = form.fields.get("temperature") {
        let value: f64 = temperature
            .parse()
            .map_err(|_| ApiError::bad_request("temperature must be a number"))?;
        if value != 0.0 {
            return Err(ApiError::bad_request(
                "temperature must be 0: transcription decodes greedily",
            ));
        }
    }
    let backend = parse_backend(form.fields.get("backend").map(String::as_str))?;
    let file = form
        .file
        .ok_or_else(|| ApiError::bad_request("the form has no 'file' part"))?;
    let audio = media::audio_bytes(&file, "file")?;
    ensure_ready(&state)?;
    let (mut word_timestamps, mut segment_timestamps) = (false, false);
    for granularity in form
        .fields
        .get("timestamp_granularities[]")
        .map(|g| g.split(',').collect::<Vec<_>>())
        .unwrap_or_default()
    {
        match granularity {
            "word" => word_timestamps = true,
            "segment" => segment_timestamps = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "timestamp_granularities '{other}' is not supported (segment, word)"
                )))
            }
        }
    }
    if (word_timestamps || segment_timestamps) && format != Format::VerboseJson {
        return Err(ApiError::bad_request(
            "timestamp_granularities needs response_format verbose_json",
        ));
    }
    let subtitles = matches!(format, Format::Srt | Format::Vtt);
    let options = TranscribeOptions {
        timestamps: word_timestamps || segment_timestamps || subtitles,
        task: task.map(str::to_owned),
        language: form
            .fields
            .get("language")
            .filter(|l| !l.is_empty())
            .cloned(),
        ..TranscribeOptions::default()
    };
    let InferResponse::Transcription {
        model,
        backend,
        transcription,
        duration_s,
    } = state
        .accelerator
        .infer_on(&model, backend, InferRequest::Transcribe { audio, options })
        .await?
    else {
        return Err(ApiError::internal("the endpoint answered another task"));
    };
    // A model gives the timestamps it has: segments (Whisper) or words
    // (CTC). Asking for the other kind is an error, not an empty list.
    let has_segments = !transcription.segments.is_empty();
    if word_timestamps && transcription.words.is_empty() && has_segments {
        return Err(ApiError::bad_request(
            "word timestamps come from CTC models (wav2vec2); Whisper gives segment timestamps",
        ));
    }
    if segment_timestamps && !has_segments && !transcription.words.is_empty() {
        return Err(ApiError::bad_request(
            "segment timestamps come from Whisper; CTC models (wav2vec2) give word timestamps",
        ));
    }
    Ok(match format {
        Format::Srt => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            ipfs_accelerate::skills::subtitles::srt(&transcription.cues()),
        )
            .into_response(),
        Format::Vtt => (
            [(header::CONTENT_TYPE, "text/vtt; charset=utf-8")],
            ipfs_accelerate::skills::subtitles::vtt(&transcription.cues()),
        )
            .into_response(),
        Format::Text => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            transcription.text,
        )
            .into_response(),
        Format::Json => Json(json!({"text": transcription.text})).into_response(),
        Format::VerboseJson => {
            let mut answer = json!({
                "task": task.unwrap_or("transcribe"),
                "language": transcription.language,
                "duration": duration_s,
                "text": transcription.text,
                "model": model,
                "backend": backend,
            });
            if word_timestamps {
                answer["words"] = json!(transcription.words);
            }
            if segment_timestamps {
                // OpenAI's segment fields that greedy decoding defines.
                answer["segments"] = transcription
                    .segments
                    .iter()
                    .map(|s| {
                        json!({
                            "id": s.id,
                            "seek": s.seek,
                            "start": s.start,
                            "end": s.end,
                            "text": s.text,
                            "tokens": s.tokens,
                            "temperature": 0.0,
                        })
                    })
                    .collect();
            }
            Json(answer).into_response()
        }
    })
}

/// Parses a whole multipart body: text fields, and the `file` part's bytes.
pub(crate) async fn parse_form(body: Bytes, boundary: &str) -> Result<Form, ApiError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    let bad = |e: multer::Error| ApiError::bad_request(format!("malformed multipart body: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            form.file = Some(field.bytes().await.map_err(bad)?);
        } else {
            let value = field.text().await.map_err(bad)?;
            // A repeated field (`timestamp_granularities[]`) keeps every value.
            form.fields
                .entry(name)
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(value.trim());
                })
                .or_insert_with(|| value.trim().to_owned());
        }
    }
    Ok(form)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_form;
    use axum::body::Bytes;
    use ipfs_accelerate_tests::fuzz::{fuzz, mutate_bytes};

    fn parse(body: &[u8], boundary: &str) -> Result<super::Form, crate::ApiError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(parse_form(Bytes::copy_from_slice(body), boundary))
    }

    /// Multipart bodies are outside bytes: any of them gives a form or a
    /// 400, never a panic (`cargo xtask fuzz` runs this longer).
    #[test]
    fn fuzz_multipart_bodies() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-tiny\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01\xff\r\n--XyZ--\r\n".to_vec();
        let form = parse(&body, "XyZ").unwrap();
        assert_eq!(form.fields["model"], "whisper-tiny");
        assert_eq!(form.file.as_deref(), Some(&b"RIFF\x00\x01\xff"[..]));
        let findings = fuzz(
            "multipart",
            &[body],
            |rng, seed| mutate_bytes(rng, seed, 0),
            |input| {
                if let Err(err) = parse(input, "XyZ") {
                    assert_eq!(err.status, 400, "{}", err.message);
                }
            },
        );
        assert!(findings.is_empty(), "{findings:?}");
    }
}
