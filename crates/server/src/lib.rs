//! The HTTP server: OpenAI- and TEI-compatible routes over an
//! [`Accelerator`], with health, Prometheus metrics and endpoint status.
//!
//! Routes: `POST /v1/embeddings`, `/v1/completions`, `/v1/chat/completions`,
//! `/v1/audio/transcriptions`, `/v1/audio/translations`, `/similarity`, `/embed` (TEI); `GET
//! /v1/models`, `/v1/models/{id}`, `/health`, `/metrics`, `/endpoints`. Errors are JSON `{"error": {"message", "type", "code"}}`.

mod auth;
mod body;
mod connections;
mod error;
mod media;
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
use std::time::Duration;

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
    /// Largest accepted upload (`/v1/audio/transcriptions`) in bytes.
    pub upload_limit: usize,
    /// Serve a non-loopback address without `api_key` (refused otherwise).
    pub insecure_no_auth: bool,
    /// Largest `max_tokens` a generation request may ask for (400 above).
    pub max_tokens_limit: usize,
    /// Open connections at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// A connection must send complete request headers within this (also
    /// how long an idle keep-alive connection is kept).
    pub header_timeout: Duration,
    /// A request body must arrive completely within this.
    pub body_timeout: Duration,
    /// After the shutdown signal, in-flight requests get this long before
    /// the server stops anyway.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models: Vec::new(),
            backend: BackendKind::Auto,
            api_key: None,
            body_limit: 2 * 1024 * 1024,
            // OpenAI's own limit for audio uploads.
            upload_limit: 25 * 1024 * 1024,
            insecure_no_auth: false,
            max_tokens_limit: 4096,
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The router over `state` (for tests and embedding in other servers).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/embeddings", post(routes::embeddings::openai))
        .route("/embed", post(routes::embeddings::tei))
        .route("/v1/completions", post(routes::completions::completions))
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route(
            "/v1/audio/transcriptions",
            post(routes::transcriptions::transcriptions),
        )
        .route(
            "/v1/audio/translations",
            post(routes::transcriptions::translations),
        )
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{*id}", get(routes::models::retrieve))
        // Ours; also under /v1, where OpenAI's clients' generic `post`
        // puts a relative path.
        .route("/similarity", post(routes::similarity::similarity))
        .route("/v1/similarity", post(routes::similarity::similarity))
        .route("/health", get(routes::status::health))
        .route("/metrics", get(routes::status::metrics))
        .route("/endpoints", get(routes::status::endpoints))
        .fallback(routes::status::not_found)
        .method_not_allowed_fallback(routes::status::method_not_allowed)
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
/// resolves, then gives in-flight requests `config.shutdown_grace` to
/// finish. `on_bound` gets the real address (useful with port 0).
///
/// Connections are served by hyper directly rather than `axum::serve`, for
/// what a server facing untrusted clients needs and `axum::serve` does not
/// offer: a header read timeout, a connection limit and a bounded shutdown.
pub async fn serve(
    config: ServerConfig,
    accelerator: Accelerator,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    check_exposure(&config)?;
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
    connections::accept_until(listener, router(state.clone()), &config, stop).await;
    loading.abort();
    if state.is_ready() && state.accelerator.models().is_empty() && !config.models.is_empty() {
        return Err(ApiError::internal(format!(
            "no model could be loaded: {}",
            state.load_errors().join("; ")
        )));
    }
    Ok(())
}

/// Every route but `/health` runs models and reads the cache: open to the
/// network only with a key, or when the operator says so in as many words.
fn check_exposure(config: &ServerConfig) -> Result<(), ApiError> {
    if config.addr.ip().is_loopback() || config.api_key.is_some() {
        return Ok(());
    }
    if config.insecure_no_auth {
        tracing::warn!(
            addr = %config.addr,
            "serving every route to the network without an API key (--insecure-no-auth)"
        );
        return Ok(());
    }
    Err(ApiError::internal(format!(
        "refusing to serve {} without an API key: set --api-key (or IPFS_ACCELERATE_API_KEY), bind a loopback address, or pass --insecure-no-auth",
        config.addr
    )))
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
