//! Chat completions and transcriptions. The routes exist so clients get a
//! precise answer; they are not wired to a skill yet (chat templates run
//! through `generate --chat`, not this route; there is no speech skill), so
//! a served model is the wrong task and anything else is unknown.

use super::ensure_ready;
use crate::body::{read_json, read_limited};
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::Json;
use ipfs_accelerate::AcceleratorError;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct ModelOnly {
    model: String,
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    task: &'static str,
) -> Result<Json<Value>, ApiError> {
    let request: ModelOnly = read_json(headers, body, state).await?;
    ensure_ready(state)?;
    refuse(state, &request.model, task)
}

fn refuse(state: &AppState, model: &str, task: &'static str) -> Result<Json<Value>, ApiError> {
    if let Some(endpoint) = state
        .accelerator
        .endpoints()
        .into_iter()
        .find(|e| e.model == model)
    {
        let serves = match endpoint.skill {
            "text_embedding" => "embeddings",
            "text_generation" | "text2text" => "completions",
            _ => "other tasks",
        };
        return Err(AcceleratorError::WrongTask {
            model: model.to_owned(),
            task,
            serves,
        }
        .into());
    }
    let served = state.accelerator.models();
    Err(AcceleratorError::UnknownModel {
        model: model.to_owned(),
        served,
    }
    .into())
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    answer(&state, &headers, body, "chat completion").await
}

/// Multipart: the `model` field names the model; the audio part is read
/// within the body limit.
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let content_type = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(boundary) = content_type
        .strip_prefix("multipart/form-data")
        .and_then(|rest| rest.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_owned())
    else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected multipart/form-data with a file and a model field",
        ));
    };
    let bytes = read_limited(request.into_body(), &state).await?;
    let model = multipart_field(&bytes, &boundary, "model")
        .ok_or_else(|| ApiError::bad_request("the multipart body has no 'model' field"))?;
    ensure_ready(&state)?;
    refuse(&state, &model, "transcription")
}

/// The text value of a multipart form field.
fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let marker = format!("name=\"{name}\"");
    text.split(&format!("--{boundary}")).find_map(|part| {
        let (headers, value) = part.split_once("\r\n\r\n")?;
        headers
            .contains(&marker)
            .then(|| value.trim_end_matches("\r\n").trim().to_owned())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::multipart_field;
    use ipfs_accelerate_tests::fuzz::{fuzz, mutate_bytes};

    /// Multipart bodies are outside bytes: any of them gives a field or
    /// none, never a panic (`cargo xtask fuzz` runs this longer).
    #[test]
    fn fuzz_multipart_bodies() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-tiny\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01\xff\r\n--XyZ--\r\n".to_vec();
        assert_eq!(
            multipart_field(&body, "XyZ", "model").as_deref(),
            Some("whisper-tiny")
        );
        let findings = fuzz(
            "multipart",
            &[body],
            |rng, seed| mutate_bytes(rng, seed, 0),
            |input| {
                let _ = multipart_field(input, "XyZ", "model");
                let _ = multipart_field(input, "", "file");
            },
        );
        assert!(findings.is_empty(), "{findings:?}");
    }
}
