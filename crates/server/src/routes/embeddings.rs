//! `POST /v1/embeddings` (OpenAI) and `POST /embed` (text-embeddings-inference).

use super::ensure_ready;
use crate::body::read_json;
use crate::{media, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine;
use ipfs_accelerate::{BackendKind, EmbedInput, InferRequest, InferResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A string or a list of strings (`input` / `inputs`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TextInput {
    One(String),
    Many(Vec<String>),
}

impl TextInput {
    fn into_texts(self) -> Result<Vec<String>, ApiError> {
        let texts = match self {
            Self::One(t) => vec![t],
            Self::Many(ts) => ts,
        };
        if texts.is_empty() {
            return Err(ApiError::bad_request(
                "input is empty: give a string or a non-empty list of strings",
            ));
        }
        Ok(texts)
    }
}

/// Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
struct OpenAiRequest {
    /// A string, or a list of strings and (CLIP, CLAP) `{"image": ...}` /
    /// `{"audio": ...}` items.
    input: Value,
    model: String,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    /// Extension: run on this backend's endpoint (default: least loaded).
    #[serde(default)]
    backend: Option<String>,
}

pub async fn openai(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: OpenAiRequest = read_json(&headers, body, &state).await?;
    let base64_floats = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format '{other}' is not supported (float, base64)"
            )))
        }
    };
    let chosen = match request.backend.as_deref() {
        None => None,
        Some(name) => Some(
            name.parse::<BackendKind>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
    let inputs = openai_inputs(request.input)?;
    ensure_ready(&state)?;
    let InferResponse::Embeddings {
        model,
        backend,
        embeddings,
        tokens,
    } = state
        .accelerator
        .infer_on(&request.model, chosen, inputs)
        .await?
    else {
        return Err(ApiError::internal("the endpoint answered another task"));
    };
    if let Some(d) = request.dimensions {
        if embeddings.first().is_some_and(|e| e.len() != d) {
            return Err(ApiError::bad_request(format!(
                "this model gives {} dimensions, not {d}",
                embeddings[0].len()
            )));
        }
    }
    let data: Vec<Value> = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64_floats {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "backend": backend,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

/// OpenAI's `input` as a request: texts only go to [`InferRequest::Embed`]
/// (batched for text-embedding models), media items to
/// [`InferRequest::EmbedItems`].
fn openai_inputs(input: Value) -> Result<InferRequest, ApiError> {
    let items = match input {
        Value::String(text) => return Ok(InferRequest::Embed { texts: vec![text] }),
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::bad_request(
                "input must be a string or a list of strings (or, for CLIP and CLAP, {\"image\": ...} / {\"audio\": ...} items)",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "input is empty: give a string or a non-empty list of strings",
        ));
    }
    if items.iter().all(Value::is_string) {
        let texts = items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        return Ok(InferRequest::Embed { texts });
    }
    let items = items
        .iter()
        .enumerate()
        .map(|(i, item)| embed_input(i, item))
        .collect::<Result<_, _>>()?;
    Ok(InferRequest::EmbedItems { items })
}

fn embed_input(index: usize, item: &Value) -> Result<EmbedInput, ApiError> {
    let what = |kind: &str| format!("input[{index}] {kind}");
    match item {
        Value::String(text) => Ok(EmbedInput::Text(text.clone())),
        Value::Object(fields) => match (fields.get("image"), fields.get("audio")) {
            (Some(Value::String(image)), None) => {
                Ok(EmbedInput::Image(media::image(image, &what("image"))?))
            }
            (None, Some(Value::String(audio))) => {
                Ok(EmbedInput::Audio(media::audio(audio, &what("audio"))?))
            }
            _ => Err(ApiError::bad_request(format!(
                "input[{index}]: an item is a string, {{\"image\": \"<data URL or base64>\"}} or {{\"audio\": \"<data URL or base64 WAV>\"}}"
            ))),
        },
        Value::Number(_) | Value::Array(_) => Err(ApiError::bad_request(
            "token-id input is not supported: send the texts",
        )),
        _ => Err(ApiError::bad_request(format!(
            "input[{index}] is neither a string nor a media item"
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct TeiRequest {
    inputs: TextInput,
    #[serde(default = "yes")]
    normalize: bool,
    #[serde(default = "yes")]
    truncate: bool,
    /// Extension: which served model (default: the first).
    #[serde(default)]
    model: Option<String>,
}

fn yes() -> bool {
    true
}

pub async fn tei(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: TeiRequest = read_json(&headers, body, &state).await?;
    if !request.normalize {
        return Err(ApiError::bad_request(
            "normalize=false is not supported: vectors are pooled and normalised as the model's sentence-transformers files say",
        ));
    }
    if !request.truncate {
        return Err(ApiError::bad_request(
            "truncate=false is not supported: inputs are truncated at the model's max_seq_length",
        ));
    }
    ensure_ready(&state)?;
    let texts = request.inputs.into_texts()?;
    let model = match request.model {
        Some(m) => m,
        None => state
            .accelerator
            .models()
            .into_iter()
            .next()
            .ok_or_else(|| {
                ApiError::new(axum::http::StatusCode::NOT_FOUND, "no model is served")
            })?,
    };
    let InferResponse::Embeddings { embeddings, .. } = state
        .accelerator
        .infer(&model, InferRequest::Embed { texts })
        .await?
    else {
        return Err(ApiError::internal("the endpoint answered another task"));
    };
    Ok(Json(json!(embeddings)))
}
