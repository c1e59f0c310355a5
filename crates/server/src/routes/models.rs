//! `GET /v1/models` and `GET /v1/models/{id}` (OpenAI): the served models,
//! each with its task and the backends it runs on (extensions).

use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::Json;
use ipfs_accelerate::AcceleratorError;
use serde_json::{json, Value};
use std::sync::Arc;

fn model_object(state: &AppState, id: &str) -> Option<Value> {
    let endpoints: Vec<_> = state
        .accelerator
        .endpoints()
        .into_iter()
        .filter(|e| e.model == id)
        .collect();
    let first = endpoints.first()?;
    let backends: Vec<_> = endpoints.iter().map(|e| e.backend).collect();
    Some(json!({
        "id": id,
        "object": "model",
        "created": state.started,
        "owned_by": "ipfs-accelerate",
        "task": first.skill,
        "backends": backends,
    }))
}

pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .accelerator
        .models()
        .iter()
        .filter_map(|id| model_object(&state, id))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The id may hold slashes (`sentence-transformers/all-MiniLM-L6-v2`, a
/// folder path): the route takes the rest of the path.
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    model_object(&state, &id)
        .or_else(|| model_object(&state, &format!("/{id}")))
        .map(Json)
        .ok_or_else(|| {
            AcceleratorError::UnknownModel {
                model: id,
                served: state.accelerator.models(),
            }
            .into()
        })
}
