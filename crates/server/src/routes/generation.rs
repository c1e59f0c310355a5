//! What the completion and chat routes share: OpenAI's sampling fields,
//! `finish_reason`, ids and timestamps, running a generation on an
//! endpoint, and server-sent events.
//!
//! OpenAI's defaults hold: `temperature` 1 (sampling); `temperature: 0` is
//! greedy decoding. Without a `seed` each request draws its own.
//! Extensions: `top_k`, `repetition_penalty`, `backend`.

use crate::ApiError;
use crate::AppState;
use axum::response::sse::Event;
use ipfs_accelerate::{
    BackendKind, Cancellation, GenerateOptions, Generation, InferRequest, InferResponse,
    SamplingParams, StopReason,
};
use serde::Deserialize;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// The sampling fields of a completion or chat request. Unknown fields are
/// ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
pub(crate) struct SamplingFields {
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
    n: Option<usize>,
    /// Extension: run on this backend's endpoint (default: least loaded).
    #[serde(default)]
    backend: Option<String>,
}

impl SamplingFields {
    /// The generation options for `max_new_tokens` new tokens at most.
    pub(crate) fn options(
        &self,
        max_new_tokens: usize,
        max_tokens_limit: usize,
    ) -> Result<GenerateOptions, ApiError> {
        if max_new_tokens > max_tokens_limit {
            return Err(ApiError::bad_request(format!(
                "max_tokens {max_new_tokens} exceeds this server's limit of {max_tokens_limit} (serve --max-tokens-limit)"
            )));
        }
        if max_new_tokens == 0 {
            return Err(ApiError::bad_request("max_tokens must be at least 1"));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(
                "n must be 1: one choice per request is generated",
            ));
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

    /// The `backend` extension, parsed.
    pub(crate) fn backend(&self) -> Result<Option<BackendKind>, ApiError> {
        parse_backend(self.backend.as_deref())
    }
}

/// The `backend` extension of a request, parsed.
pub(crate) fn parse_backend(name: Option<&str>) -> Result<Option<BackendKind>, ApiError> {
    name.map(|name| {
        name.parse::<BackendKind>()
            .map_err(|e| ApiError::bad_request(e.to_string()))
    })
    .transpose()
}

/// A seed for requests that give none: different per request.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

/// Seconds since the epoch (`created`).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id with OpenAI's prefix for the object (`cmpl`, `chatcmpl`).
pub(crate) fn response_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// OpenAI's `finish_reason`.
pub(crate) fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        // Nobody reads a cancelled answer; "stop" keeps the field valid.
        StopReason::Eos | StopReason::StopString | StopReason::Cancelled => "stop",
        StopReason::MaxNewTokens | StopReason::ContextFull => "length",
    }
}

/// OpenAI's `usage` object.
pub(crate) fn usage(g: &Generation) -> Value {
    serde_json::json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.token_ids.len(),
        "total_tokens": g.prompt_tokens + g.token_ids.len(),
    })
}

/// Runs a generating request (completion or chat) on `model`.
pub(crate) async fn run(
    state: &AppState,
    model: &str,
    backend: Option<BackendKind>,
    request: InferRequest,
) -> Result<(String, BackendKind, Generation), ApiError> {
    match state.accelerator.infer_on(model, backend, request).await? {
        InferResponse::Generation {
            model,
            backend,
            generation,
        } => Ok((model, backend, generation)),
        _ => Err(ApiError::internal("the endpoint answered another task")),
    }
}

/// Server-sent events from a producer: each value becomes a `data:` event,
/// and `data: [DONE]` ends the stream, as OpenAI's clients expect. When the
/// client goes away the producer is dropped, and with it the receiver of
/// the generated text, which cancels the generation.
pub(crate) fn event_stream<F, Fut>(
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

/// The error event of a stream that failed after it started: OpenAI's
/// clients raise it as an API error.
pub(crate) fn stream_error(err: &ApiError) -> Value {
    let message = if err.status.is_server_error() {
        tracing::error!("streamed request failed: {}", err.message);
        "internal server error (details are in the server's log)".to_owned()
    } else {
        err.message.clone()
    };
    serde_json::json!({"error": {"message": message, "type": err.kind(), "code": err.status.as_u16()}})
}

/// What a generation run to its end gives.
pub(crate) type Finished = Result<(String, BackendKind, Generation), ApiError>;

/// A streamed generation once it has begun: requests that fail before
/// their first token (an unknown model, a model without a chat template,
/// a full queue) are answered with their HTTP status rather than as an
/// event in a stream that already said 200.
pub(crate) struct StartedStream {
    /// The pieces still to come.
    pub pieces: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The first piece, if the generation produced one.
    pub first: Option<String>,
    /// The result, once the generation ended.
    pub finished: tokio::task::JoinHandle<Finished>,
}

/// Runs `request` (which sends its text to the stream of `pieces`) on
/// `model` and waits for its first piece or its end.
pub(crate) async fn start_stream(
    state: std::sync::Arc<AppState>,
    model: String,
    backend: Option<BackendKind>,
    request: InferRequest,
    mut pieces: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Result<StartedStream, ApiError> {
    let mut finished = tokio::spawn(async move { run(&state, &model, backend, request).await });
    let first = tokio::select! {
        biased;
        piece = pieces.recv() => piece,
        result = &mut finished => return ended(pieces, result).await,
    };
    if first.is_none() {
        // No piece and the stream closed: the request ended (or is ending).
        let result = (&mut finished).await;
        return ended(pieces, result).await;
    }
    Ok(StartedStream {
        pieces,
        first,
        finished,
    })
}

/// A streamed request that ended before its stream began: its error is
/// the answer, or its result is handed over with the pieces still queued.
async fn ended(
    mut pieces: tokio::sync::mpsc::UnboundedReceiver<String>,
    result: Result<Finished, tokio::task::JoinError>,
) -> Result<StartedStream, ApiError> {
    match result {
        Ok(Err(err)) => Err(err),
        Err(join) => Err(ApiError::internal(join.to_string())),
        Ok(Ok(done)) => {
            let first = pieces.recv().await;
            Ok(StartedStream {
                pieces,
                first,
                finished: tokio::spawn(async move { Ok(done) }),
            })
        }
    }
}
