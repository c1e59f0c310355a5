//! `POST /similarity` (ours): texts scored against one image (CLIP), one
//! recording (CLAP) or one video's frames (X-CLIP), with the numbers the
//! command line's `similarity` gives.
//!
//! `{"model", "texts": [...], "image": "<data URL or base64>"}` (or
//! `"audio"`, a WAV; or `"video": [frames]`) →
//! `{"model", "backend", "logits", "probs"}`.

use super::ensure_ready;
use super::generation::parse_backend;
use crate::body::read_json;
use crate::{media, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use ipfs_accelerate::{InferRequest, InferResponse, MediaInput};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct SimilarityRequest {
    model: String,
    texts: Vec<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    audio: Option<String>,
    #[serde(default)]
    video: Option<Vec<String>>,
    #[serde(default)]
    backend: Option<String>,
}

pub async fn similarity(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: SimilarityRequest = read_json(&headers, body, &state).await?;
    if request.texts.is_empty() {
        return Err(ApiError::bad_request("texts is empty"));
    }
    let backend = parse_backend(request.backend.as_deref())?;
    let media = match (&request.image, &request.audio, &request.video) {
        (Some(image), None, None) => MediaInput::Image(media::image(image, "image")?),
        (None, Some(audio), None) => MediaInput::Audio(media::audio(audio, "audio")?),
        (None, None, Some(frames)) => MediaInput::Video(media::video(frames)?),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of image, audio or video",
            ))
        }
    };
    ensure_ready(&state)?;
    let InferResponse::Similarity {
        model,
        backend,
        similarity,
    } = state
        .accelerator
        .infer_on(
            &request.model,
            backend,
            InferRequest::Similarity {
                texts: request.texts,
                media,
            },
        )
        .await?
    else {
        return Err(ApiError::internal("the endpoint answered another task"));
    };
    Ok(Json(json!({
        "model": model,
        "backend": backend,
        "logits": similarity.logits,
        "probs": similarity.probs,
    })))
}
