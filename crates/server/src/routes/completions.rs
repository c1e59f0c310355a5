//! `POST /v1/completions` (OpenAI): text generation, whole or streamed as
//! server-sent events. OpenAI's default `max_tokens` is 16.

use super::ensure_ready;
use super::generation::{
    event_stream, finish_reason, response_id, run, start_stream, stream_error, unix_now, usage,
    OneOrMany, SamplingFields, StartedStream,
};
use crate::body::read_json;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfs_accelerate::{BackendKind, Generation, InferRequest, TextStream};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: usize = 16;

/// Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: OneOrMany,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(flatten)]
    sampling: SamplingFields,
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: CompletionRequest = read_json(&headers, body, &state).await?;
    let options = request.sampling.options(
        request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        state.max_tokens_limit,
    )?;
    let chosen = request.sampling.backend()?;
    let mut prompts = request.prompt.into_vec();
    if prompts.len() != 1 {
        return Err(ApiError::bad_request(
            "give one prompt per request (a string or a list of one string)",
        ));
    }
    let prompt = prompts.remove(0);
    if prompt.is_empty() {
        return Err(ApiError::bad_request("prompt is empty"));
    }
    ensure_ready(&state)?;
    let id = response_id("cmpl");
    let created = unix_now();
    if !request.stream {
        let (model, backend, generation) = run(
            &state,
            &request.model,
            chosen,
            InferRequest::generate(prompt, options),
        )
        .await?;
        return Ok(Json(answer(&id, created, &model, backend, &generation)).into_response());
    }
    let (stream, pieces) = TextStream::channel();
    let request_stream = InferRequest::Generate {
        prompt,
        options,
        stream: Some(stream),
    };
    let model = request.model;
    let StartedStream {
        mut pieces,
        first,
        finished,
    } = start_stream(state.clone(), model.clone(), chosen, request_stream, pieces).await?;
    let events = event_stream(move |mut emit| async move {
        if let Some(piece) = first {
            emit(chunk(&id, created, &model, &piece, None));
        }
        while let Some(piece) = pieces.recv().await {
            emit(chunk(&id, created, &model, &piece, None));
        }
        match finished.await {
            Ok(Ok((_, _, generation))) => {
                emit(chunk(
                    &id,
                    created,
                    &model,
                    "",
                    Some(finish_reason(generation.stop_reason)),
                ));
            }
            Ok(Err(err)) => emit(stream_error(&err)),
            Err(join) => emit(stream_error(&ApiError::internal(join.to_string()))),
        }
    });
    Ok(Sse::new(events).into_response())
}

fn answer(id: &str, created: u64, model: &str, backend: BackendKind, g: &Generation) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "backend": backend,
        "choices": [{
            "index": 0,
            "text": g.text,
            "token_ids": g.token_ids,
            "finish_reason": finish_reason(g.stop_reason),
            "logprobs": null,
        }],
        "usage": usage(g),
    })
}

fn chunk(id: &str, created: u64, model: &str, text: &str, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
    })
}
