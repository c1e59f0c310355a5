//! Reading request bodies with a size limit that answers 413 cleanly, a
//! deadline that answers 408, and the JSON content type required.
//!
//! An over-long body is drained (up to a cap) rather than cut off, so the
//! client has finished sending when the 413 arrives and sees it instead of a
//! connection reset.

use crate::{ApiError, AppState};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// Past this many bytes an over-long body is no longer drained.
const DRAIN_CAP: usize = 256 * 1024 * 1024;

/// Reads the whole body within the server's size limit (413 past it) and
/// body timeout (408 past it: a client that stops sending mid-body must
/// not hold the request, and graceful shutdown, open).
pub async fn read_limited(body: Body, state: &AppState) -> Result<Bytes, ApiError> {
    read_limited_to(body, state, state.body_limit).await
}

/// [`read_limited`] with another size limit (uploads have their own).
pub async fn read_limited_to(
    body: Body,
    state: &AppState,
    limit: usize,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(state.body_timeout, read_within(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    state.body_timeout.as_secs()
                ),
            )
        })?
}

/// A JSON route's body: `Content-Type: application/json` (415 otherwise),
/// read within the limits and parsed.
///
/// The type is required because browsers send `text/plain` cross-origin
/// without a CORS preflight: accepting it would let any web page drive a
/// server on the visitor's loopback.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    state: &AppState,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        let given = if content_type.is_empty() {
            "none".to_owned()
        } else {
            format!("'{content_type}'")
        };
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: application/json, got {given}"),
        ));
    }
    let bytes = read_limited(body, state).await?;
    parse_json(&bytes)
}

async fn read_within(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        total += chunk.len();
        if total <= limit {
            buffer.extend_from_slice(&chunk);
        } else {
            buffer = Vec::new();
            if total > DRAIN_CAP {
                break;
            }
        }
    }
    if total > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body of {total}+ bytes exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(Bytes::from(buffer))
}

/// Parses a JSON body; malformed JSON or wrong types are a 400 naming the problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
