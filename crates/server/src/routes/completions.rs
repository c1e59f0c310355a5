//! `POST /v1/completions` (OpenAI): text generation, whole or streamed as
//! server-sent events.
//!
//! OpenAI's defaults hold: `max_tokens` 16, `temperature` 1 (sampling);
//! `temperature: 0` is greedy decoding. Without a `seed` each request draws
//! its own. Extensions: `top_k`, `repetition_penalty`, `backend`.

use super::ensure_ready;
use crate::body::read_json;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfs_accelerate::{
    BackendKind, Cancellation, GenerateOptions, Generation, InferRequest, InferResponse,
    SamplingParams, StopReason, TextStream,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: usize = 16;

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: OneOrMany,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<OneOrMany>,
    #[serde(default)]
    repetition_penalty: Option<f32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    backend: Option<String>,
}

impl CompletionRequest {
    fn options(&self, max_tokens_limit: usize) -> Result<GenerateOptions, ApiError> {
        let max_new_tokens = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_new_tokens > max_tokens_limit {
            return Err(ApiError::bad_request(format!(
                "max_tokens {max_new_tokens} exceeds this server's limit of {max_tokens_limit} (serve --max-tokens-limit)"
            )));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(ApiError::bad_request("temperature must be 0 or more"));
        }
        let sampling = (temperature > 0.0).then(|| SamplingParams {
            temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed.unwrap_or_else(fresh_seed),
        });
        Ok(GenerateOptions {
            max_new_tokens,
            sampling,
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            stop: self
                .stop
                .as_ref()
                .map(|s| match s {
                    OneOrMany::One(s) => vec![s.clone()],
                    OneOrMany::Many(v) => v.clone(),
                })
                .unwrap_or_default(),
            return_logits: false,
            cancel: Cancellation::new(),
        })
    }
}

/// A seed for requests that give none: different per request.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("cmpl-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// OpenAI's `finish_reason`.
fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        // Nobody reads a cancelled answer; "stop" keeps the field valid.
        StopReason::Eos | StopReason::StopString | StopReason::Cancelled => "stop",
        StopReason::MaxNewTokens | StopReason::ContextFull => "length",
    }
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: CompletionRequest = read_json(&headers, body, &state).await?;
    let options = request.options(state.max_tokens_limit)?;
    let chosen = match request.backend.as_deref() {
        None => None,
        Some(name) => Some(
            name.parse::<BackendKind>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
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
    let id = completion_id();
    let created = unix_now();
    if !request.stream {
        let (model, backend, generation) =
            run(&state, &request.model, chosen, prompt, options, None).await?;
        return Ok(Json(answer(&id, created, &model, backend, &generation)).into_response());
    }
    let (stream, mut pieces) = TextStream::channel();
    let state = state.clone();
    let model_name = request.model.clone();
    let finished = tokio::spawn(async move {
        run(&state, &model_name, chosen, prompt, options, Some(stream)).await
    });
    let model = request.model;
    let events = async_stream(move |mut emit| async move {
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
            Ok(Err(err)) => emit(json!({"error": {"message": err.message}})),
            Err(join) => emit(json!({"error": {"message": join.to_string()}})),
        }
    });
    Ok(Sse::new(events).into_response())
}

async fn run(
    state: &AppState,
    model: &str,
    backend: Option<BackendKind>,
    prompt: String,
    options: GenerateOptions,
    stream: Option<TextStream>,
) -> Result<(String, BackendKind, Generation), ApiError> {
    let request = InferRequest::Generate {
        prompt,
        options,
        stream,
    };
    match state.accelerator.infer_on(model, backend, request).await? {
        InferResponse::Generation {
            model,
            backend,
            generation,
        } => Ok((model, backend, generation)),
        InferResponse::Embeddings { .. } => {
            Err(ApiError::internal("the endpoint answered another task"))
        }
    }
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
        "usage": {
            "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.token_ids.len(),
            "total_tokens": g.prompt_tokens + g.token_ids.len(),
        },
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

/// Server-sent events from a producer: each value becomes a `data:` event,
/// and `data: [DONE]` ends the stream, as OpenAI's clients expect. When the
/// client goes away the producer is dropped, and with it the receiver of
/// the generated text, which cancels the generation.
fn async_stream<F, Fut>(
    produce: F,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send
where
    F: FnOnce(Box<dyn FnMut(Value) + Send>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let done = tx.clone();
    tokio::spawn(async move {
        let emit = Box::new(move |value: Value| {
            let _ = tx.send(Event::default().data(value.to_string()));
        });
        let client_gone = done.clone();
        tokio::select! {
            () = produce(emit) => {
                let _ = done.send(Event::default().data("[DONE]"));
            }
            () = client_gone.closed() => {}
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}
