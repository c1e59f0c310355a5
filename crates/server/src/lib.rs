//! The HTTP server: OpenAI- and TEI-compatible routes over an
//! [`Accelerator`], with health, Prometheus metrics and endpoint status.
//!
//! Routes: `POST /v1/embeddings`, `/v1/completions`, `/v1/chat/completions`,
//! `/v1/audio/transcriptions`, `/embed` (TEI); `GET /health`, `/metrics`,
//! `/endpoints`. Errors are JSON `{"error": {"message", "type", "code"}}`.

mod auth;
mod body;
mod error;
mod metrics;
mod routes;
mod state;

pub use error::ApiError;
pub use state::AppState;

use axum::routing::{get, post};
use axum::Router;
use ipfs_accelerate::{Accelerator, BackendKind};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (loopback by default).
    pub addr: SocketAddr,
    /// Models to load, as `--model` names them.
    pub models: Vec<String>,
    /// Backend for every model.
    pub backend: BackendKind,
    /// Bearer token every route but `/health` requires, if set.
    pub api_key: Option<String>,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models: Vec::new(),
            backend: BackendKind::Auto,
            api_key: None,
            body_limit: 2 * 1024 * 1024,
        }
    }
}

/// The router over `state` (for tests and embedding in other servers).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/embeddings", post(routes::embeddings::openai))
        .route("/embed", post(routes::embeddings::tei))
        .route("/v1/completions", post(routes::completions::completions))
        .route(
            "/v1/chat/completions",
            post(routes::generation::chat_completions),
        )
        .route(
            "/v1/audio/transcriptions",
            post(routes::generation::transcriptions),
        )
        .route("/health", get(routes::status::health))
        .route("/metrics", get(routes::status::metrics))
        .route("/endpoints", get(routes::status::endpoints))
        .fallback(routes::status::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Bodies are read by `body::read_limited`, which answers 413 itself.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Binds `config.addr`, starts loading the models in the background (the
/// server answers 503 until they are ready) and serves until `shutdown`
/// resolves, then finishes in-flight requests. `on_bound` gets the real
/// address (useful with port 0).
pub async fn serve(
    config: ServerConfig,
    accelerator: Accelerator,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| ApiError::internal(format!("cannot listen on {}: {e}", config.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let state = Arc::new(AppState::new(accelerator, &config));
    on_bound(addr);

    // If no model at all can be loaded there is nothing to serve: stop.
    let nothing_loaded = Arc::new(tokio::sync::Notify::new());
    let loading = {
        let state = state.clone();
        let models = config.models.clone();
        let backend = config.backend;
        let nothing_loaded = nothing_loaded.clone();
        tokio::spawn(async move {
            state.load_models(&models, backend).await;
            if state.accelerator.models().is_empty() {
                nothing_loaded.notify_one();
            }
        })
    };
    let stop = async move {
        tokio::select! {
            () = shutdown => {},
            () = nothing_loaded.notified() => {},
        }
    };
    let server = axum::serve(listener, router(state.clone())).with_graceful_shutdown(stop);
    let result = server.await.map_err(|e| ApiError::internal(e.to_string()));
    loading.abort();
    result?;
    if state.is_ready() && state.accelerator.models().is_empty() && !config.models.is_empty() {
        return Err(ApiError::internal(format!(
            "no model could be loaded: {}",
            state.load_errors().join("; ")
        )));
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
