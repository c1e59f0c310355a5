//! Reading request bodies with a size limit that answers 413 cleanly.
//!
//! An over-long body is drained (up to a cap) rather than cut off, so the
//! client has finished sending when the 413 arrives and sees it instead of a
//! connection reset.

use crate::ApiError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// Past this many bytes an over-long body is no longer drained.
const DRAIN_CAP: usize = 256 * 1024 * 1024;

/// Reads the whole body, or answers 413 when it exceeds `limit`.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
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
