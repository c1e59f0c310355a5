//! One file per group of routes.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod generation;
pub mod models;
pub mod similarity;
pub mod status;
pub mod transcriptions;

use crate::{ApiError, AppState};
use axum::http::StatusCode;

/// 503 until the models are loaded.
pub(crate) fn ensure_ready(state: &AppState) -> Result<(), ApiError> {
    if state.is_ready() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "models are still loading; retry shortly",
        ))
    }
}
