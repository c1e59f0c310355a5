//! `GET /health`, `/metrics`, `/endpoints`, and the JSON 404 and 405.

use crate::{metrics, ApiError, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let models = state.accelerator.models();
    let errors = state.load_errors();
    if !state.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response();
    }
    if models.is_empty() {
        let body = json!({"status": "failed", "errors": errors});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(json!({"status": "ok", "models": models, "errors": errors})).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&state),
    )
        .into_response()
}

pub async fn endpoints(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({"endpoints": state.accelerator.endpoints(), "ready": state.is_ready()}))
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// A route called with the wrong method: the JSON error body like every
/// other error (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this route does not take {method}"),
    )
}
