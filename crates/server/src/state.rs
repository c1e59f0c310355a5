//! Shared server state.

use crate::metrics::HttpMetrics;
use crate::ServerConfig;
use ipfs_accelerate::{Accelerator, BackendKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What every handler sees.
#[derive(Debug)]
pub struct AppState {
    /// The endpoints.
    pub accelerator: Accelerator,
    /// Bearer token, if required.
    pub api_key: Option<String>,
    /// Largest accepted body.
    pub body_limit: usize,
    /// Largest accepted upload (multipart audio).
    pub upload_limit: usize,
    /// When the server started (`created` of `/v1/models`).
    pub started: u64,
    /// Longest a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// Per-route HTTP counters and latencies.
    pub metrics: HttpMetrics,
    ready: AtomicBool,
    load_errors: Mutex<Vec<String>>,
}

impl AppState {
    /// State over `accelerator`, not yet ready.
    pub fn new(accelerator: Accelerator, config: &ServerConfig) -> Self {
        Self {
            accelerator,
            api_key: config.api_key.clone(),
            body_limit: config.body_limit,
            upload_limit: config.upload_limit,
            started: crate::routes::generation::unix_now(),
            body_timeout: config.body_timeout,
            max_tokens_limit: config.max_tokens_limit,
            metrics: HttpMetrics::default(),
            ready: AtomicBool::new(false),
            load_errors: Mutex::new(Vec::new()),
        }
    }

    /// True once model loading finished (successfully or not).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Models that failed to load, with why.
    pub fn load_errors(&self) -> Vec<String> {
        self.load_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Loads `models` on `backend`, records failures and marks the server ready.
    pub async fn load_models(&self, models: &[String], backend: BackendKind) {
        for (model, backend, result) in self.accelerator.init_endpoints(models, &[backend]).await {
            if let Err(err) = result {
                tracing::error!(model, %backend, "cannot load: {err}");
                if let Ok(mut errors) = self.load_errors.lock() {
                    errors.push(format!("{model}: {err}"));
                }
            }
        }
        self.ready.store(true, Ordering::Release);
        tracing::info!(models = ?self.accelerator.models(), "ready");
    }
}
