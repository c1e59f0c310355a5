//! The `Accelerator`: endpoints (a model loaded on a backend) with dynamic
//! batching, addressed by model name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ipfs_accelerate::AcceleratorError> {
//! use ipfs_accelerate::{Accelerator, BackendKind, EndpointOptions, InferRequest, Loader};
//!
//! let acc = Accelerator::new(Loader::from_env()?, EndpointOptions::default());
//! acc.add_endpoint("sentence-transformers/all-MiniLM-L6-v2", BackendKind::Auto).await?;
//! let answer = acc
//!     .infer("sentence-transformers/all-MiniLM-L6-v2", InferRequest::embed(["hello"]))
//!     .await?;
//! # Ok(()) }
//! ```

mod batcher;
mod endpoint;
mod error;
mod latency;
mod request;
mod serial_worker;

pub use endpoint::{EndpointOptions, EndpointStatus};
pub use error::AcceleratorError;
pub use latency::{Histogram, HistogramSnapshot};
pub use request::{
    ChatMessage, ChatPart, EmbedInput, InferRequest, InferResponse, MediaInput, TextStream,
};

use endpoint::Endpoint;
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::Loader;
use std::sync::{Arc, RwLock};

/// Endpoints by model, each with its own batching queue.
#[derive(Debug, Clone)]
pub struct Accelerator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    loader: Loader,
    options: EndpointOptions,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
}

impl Accelerator {
    /// An accelerator loading through `loader`, with `options` for every
    /// endpoint it adds.
    pub fn new(loader: Loader, options: EndpointOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                loader,
                options,
                endpoints: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The loader models come through.
    pub fn loader(&self) -> &Loader {
        &self.inner.loader
    }

    /// Loads `model` on `backend` (in a blocking task) and starts its batcher.
    /// Must be called inside a tokio runtime.
    pub async fn add_endpoint(
        &self,
        model: &str,
        backend: BackendKind,
    ) -> Result<EndpointStatus, AcceleratorError> {
        let loader = self.inner.loader.clone();
        let options = self.inner.options.clone();
        let name = model.to_owned();
        let endpoint =
            tokio::task::spawn_blocking(move || Endpoint::load(&loader, &name, backend, options))
                .await
                .map_err(|e| AcceleratorError::Internal(e.to_string()))??;
        let endpoint = Arc::new(endpoint);
        let status = endpoint.status();
        self.write_endpoints().push(endpoint);
        tracing::info!(model, backend = %status.backend, load_ms = status.load_ms, "endpoint ready");
        Ok(status)
    }

    /// Loads every model on every backend listed; at most as many loads at
    /// once as there are cores. A failure is reported in its slot and does
    /// not stop the others.
    pub async fn init_endpoints(
        &self,
        models: &[String],
        backends: &[BackendKind],
    ) -> Vec<(
        String,
        BackendKind,
        Result<EndpointStatus, AcceleratorError>,
    )> {
        let backends = if backends.is_empty() {
            &[BackendKind::Auto][..]
        } else {
            backends
        };
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut tasks = Vec::new();
        for model in models {
            for &backend in backends {
                let this = self.clone();
                let gate = gate.clone();
                let model = model.clone();
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let result = this.add_endpoint(&model, backend).await;
                    (model, backend, result)
                }));
            }
        }
        let mut results = Vec::new();
        for task in tasks {
            match task.await {
                Ok(result) => results.push(result),
                Err(e) => tracing::error!("endpoint load task failed: {e}"),
            }
        }
        results
    }

    /// Runs `request` on the least-loaded endpoint serving `model`.
    pub async fn infer(
        &self,
        model: &str,
        request: InferRequest,
    ) -> Result<InferResponse, AcceleratorError> {
        self.infer_on(model, None, request).await
    }

    /// Runs `request` on `model`'s endpoint for `backend` (or the least
    /// loaded one when `None`).
    pub async fn infer_on(
        &self,
        model: &str,
        backend: Option<BackendKind>,
        request: InferRequest,
    ) -> Result<InferResponse, AcceleratorError> {
        let endpoint = self.pick(model, backend)?;
        endpoint.infer(request).await
    }

    /// Removes `model`'s endpoints (only the one on `backend` when given),
    /// freeing the model once in-flight requests finish. Returns how many.
    pub fn remove_endpoint(&self, model: &str, backend: Option<BackendKind>) -> usize {
        let mut endpoints = self.write_endpoints();
        let before = endpoints.len();
        endpoints.retain(|e| !(e.model() == model && backend.is_none_or(|b| e.backend() == b)));
        before - endpoints.len()
    }

    /// Status of every endpoint.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        self.read_endpoints().iter().map(|e| e.status()).collect()
    }

    /// The model names served.
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .read_endpoints()
            .iter()
            .map(|e| e.model().to_owned())
            .collect();
        names.dedup();
        names
    }

    fn pick(
        &self,
        model: &str,
        backend: Option<BackendKind>,
    ) -> Result<Arc<Endpoint>, AcceleratorError> {
        let endpoints = self.read_endpoints();
        endpoints
            .iter()
            .filter(|e| e.model() == model && backend.is_none_or(|b| e.backend() == b))
            .min_by_key(|e| e.queue_depth())
            .cloned()
            .ok_or_else(|| AcceleratorError::UnknownModel {
                model: model.to_owned(),
                served: endpoints.iter().map(|e| e.model().to_owned()).collect(),
            })
    }

    fn read_endpoints(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Endpoint>>> {
        // The list stays consistent even if a holder panicked.
        self.inner
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write_endpoints(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Endpoint>>> {
        self.inner
            .endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }
}
