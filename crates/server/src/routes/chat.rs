//! `POST /v1/chat/completions` (OpenAI): the messages are rendered with the
//! model's chat template and answered, whole or streamed as server-sent
//! events (`chat.completion.chunk`s: the role first, then content deltas,
//! then the `finish_reason`, then usage when `stream_options.include_usage`
//! asks for it, then `[DONE]`).
//!
//! Content is a string or a list of parts: `text`, and `image_url` with a
//! `data:` URL (PNG or JPEG) for LLaVA / LLaVA-NeXT. Without `max_tokens` /
//! `max_completion_tokens` a generation runs to its end (EOS, the context,
//! or the server's `--max-tokens-limit`), as OpenAI's does.

use super::ensure_ready;
use super::generation::{
    event_stream, finish_reason, response_id, run, start_stream, stream_error, unix_now, usage,
    SamplingFields, StartedStream,
};
use crate::body::read_json;
use crate::{media, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfs_accelerate::{ChatMessage, ChatPart, InferRequest, TextStream};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    sampling: SamplingFields,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    /// A string, a list of parts, or null (an assistant turn that called
    /// tools).
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
}

/// The messages as the accelerator takes them, images decoded.
fn messages(request: Vec<Message>) -> Result<Vec<ChatMessage>, ApiError> {
    if request.is_empty() {
        return Err(ApiError::bad_request("messages is empty"));
    }
    let mut images = 0;
    request
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let content = match message.content {
                None => Vec::new(),
                Some(Content::Text(text)) => vec![ChatPart::Text(text)],
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .map(|part| content_part(i, part, &mut images))
                    .collect::<Result<_, _>>()?,
            };
            Ok(ChatMessage {
                role: message.role,
                content,
            })
        })
        .collect()
}

fn content_part(message: usize, part: &Value, images: &mut usize) -> Result<ChatPart, ApiError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "text" => part
            .get("text")
            .and_then(Value::as_str)
            .map(|t| ChatPart::Text(t.to_owned()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "messages[{message}]: a text part needs a 'text' string"
                ))
            }),
        "image_url" => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "messages[{message}]: an image_url part needs image_url.url"
                    ))
                })?;
            *images += 1;
            let image = media::image(url, &format!("messages[{message}] image {images}"))?;
            Ok(ChatPart::Image(image))
        }
        other => Err(ApiError::bad_request(format!(
            "messages[{message}]: content parts of type '{other}' are not supported (text, image_url)"
        ))),
    }
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: ChatRequest = read_json(&headers, body, &state).await?;
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(state.max_tokens_limit);
    let options = request
        .sampling
        .options(max_tokens, state.max_tokens_limit)?;
    let chosen = request.sampling.backend()?;
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let messages = messages(request.messages)?;
    ensure_ready(&state)?;
    let id = response_id("chatcmpl");
    let created = unix_now();
    let request_model = request.model;
    if !request.stream {
        let (model, backend, g) = run(
            &state,
            &request_model,
            chosen,
            InferRequest::chat(messages, options),
        )
        .await?;
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "backend": backend,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": g.text, "refusal": null},
                "finish_reason": finish_reason(g.stop_reason),
                "logprobs": null,
            }],
            "usage": usage(&g),
        }))
        .into_response());
    }
    let (stream, pieces) = TextStream::channel();
    let request = InferRequest::Chat {
        messages,
        options,
        stream: Some(stream),
    };
    let model = request_model;
    let StartedStream {
        mut pieces,
        first,
        finished,
    } = start_stream(state.clone(), model.clone(), chosen, request, pieces).await?;
    let events = event_stream(move |mut emit| async move {
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut chunk = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            });
            if include_usage {
                chunk["usage"] = Value::Null;
            }
            chunk
        };
        // The role comes first, alone, as OpenAI sends it.
        emit(chunk(json!({"role": "assistant", "content": ""}), None));
        if let Some(piece) = first {
            emit(chunk(json!({"content": piece}), None));
        }
        while let Some(piece) = pieces.recv().await {
            emit(chunk(json!({"content": piece}), None));
        }
        match finished.await {
            Ok(Ok((_, _, generation))) => {
                emit(chunk(
                    json!({}),
                    Some(finish_reason(generation.stop_reason)),
                ));
                if include_usage {
                    emit(json!({
                        "id": id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage(&generation),
                    }));
                }
            }
            Ok(Err(err)) => emit(stream_error(&err)),
            Err(join) => emit(stream_error(&ApiError::internal(join.to_string()))),
        }
    });
    Ok(Sse::new(events).into_response())
}
