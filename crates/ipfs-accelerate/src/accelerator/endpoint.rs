//! One endpoint: a loaded model, its batching queue and its statistics.

use super::batcher::{self, Job};
use super::latency::{Histogram, HistogramSnapshot};
use super::serial_worker::{self, SerialJob, SerialSkill};
use super::{AcceleratorError, InferRequest, InferResponse};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::{Loader, ModelRef};
use ipfs_accelerate_skills::registry::skill_for_model;
use ipfs_accelerate_skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate_skills::{
    ImageCaptioner, SimilarityModel, SkillKind, SpeechRecognizer, Text2TextGenerator, TextEmbedder,
    TextGenerator,
};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How every endpoint batches and queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOptions {
    /// Most texts run in one forward pass.
    pub max_batch_size: usize,
    /// Longest a request waits for others to join its batch.
    pub max_wait: Duration,
    /// Requests waiting beyond this are refused as busy.
    pub max_queue: usize,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        Self {
            max_batch_size: 32,
            max_wait: Duration::from_millis(2),
            max_queue: 1024,
        }
    }
}

impl EndpointOptions {
    /// No dynamic batching: each request runs alone, as it arrives.
    pub fn unbatched() -> Self {
        Self {
            max_batch_size: 1,
            max_wait: Duration::ZERO,
            ..Self::default()
        }
    }
}

/// What `endpoints()` reports per endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStatus {
    /// The model as given.
    pub model: String,
    /// The skill serving it.
    pub skill: &'static str,
    /// The backend really in use.
    pub backend: BackendKind,
    /// Time to load, in milliseconds.
    pub load_ms: f64,
    /// Requests answered (successfully or not).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Generations stopped because their caller went away.
    pub cancelled: u64,
    /// Requests waiting now.
    pub queue_depth: usize,
    /// Latency percentiles over recent requests, milliseconds.
    pub latency_ms: Percentiles,
    /// End-to-end latency histogram (seconds).
    pub latency_seconds: HistogramSnapshot,
    /// Texts per executed batch.
    pub batch_sizes: HistogramSnapshot,
}

/// p50/p95/p99 in milliseconds (`null` before the first request).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Counters shared between the endpoint and its batcher.
#[derive(Debug)]
pub(crate) struct EndpointStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub rejected: AtomicU64,
    pub cancelled: AtomicU64,
    pub queue_depth: AtomicUsize,
    pub latency: Histogram,
    pub batch_sizes: Histogram,
}

/// The queue in front of an endpoint's skill.
#[derive(Debug)]
enum Queue {
    /// Dynamic batches of texts to embed.
    Embedding(mpsc::Sender<Job>),
    /// One request at a time (generation, speech, similarity, image-to-text).
    Serial {
        jobs: mpsc::Sender<SerialJob>,
        skill: Arc<SerialSkill>,
    },
}

/// A loaded model serving requests through its queue.
#[derive(Debug)]
pub(crate) struct Endpoint {
    model: String,
    skill: SkillKind,
    backend: BackendKind,
    load_time: Duration,
    queue: Queue,
    stats: Arc<EndpointStats>,
}

impl Endpoint {
    /// Loads the model (blocking) and starts the batcher on the current
    /// tokio runtime.
    pub fn load(
        loader: &Loader,
        model: &str,
        backend: BackendKind,
        options: EndpointOptions,
    ) -> Result<Self, AcceleratorError> {
        let started = Instant::now();
        // A GGUF file (or a folder holding one) has no config.json to pick
        // the skill by: it is a causal LM.
        let gguf = gguf::locate(model, None)?;
        let reference = match &gguf {
            Some(g) => g.model.clone(),
            None => ModelRef::parse(model)?,
        };
        let skill = match gguf {
            Some(_) => SkillKind::TextGeneration,
            None => skill_for_model(loader, &reference)?,
        };
        let stats = Arc::new(EndpointStats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            queue_depth: AtomicUsize::new(0),
            latency: Histogram::latency_seconds(),
            batch_sizes: Histogram::batch_sizes(),
        });
        let (queue, backend) = match skill {
            SkillKind::TextEmbedding => {
                let embedder = Arc::new(TextEmbedder::load(loader, &reference, backend)?);
                let (queue, jobs) = mpsc::channel(options.max_queue.max(1));
                let backend = embedder.backend();
                batcher::spawn(model.to_owned(), embedder, jobs, options, stats.clone());
                (Queue::Embedding(queue), backend)
            }
            serial => {
                let skill = Arc::new(match (&gguf, serial) {
                    (Some(g), _) => SerialSkill::Causal(TextGenerator::load_gguf(
                        loader,
                        g,
                        backend,
                        GgufCompute::Quantized,
                    )?),
                    (None, SkillKind::Text2Text) => SerialSkill::Text2Text(
                        Text2TextGenerator::load(loader, &reference, backend)?,
                    ),
                    (None, SkillKind::SpeechRecognition) => {
                        SerialSkill::Speech(SpeechRecognizer::load(loader, &reference, backend)?)
                    }
                    (None, SkillKind::Similarity) => {
                        SerialSkill::Similarity(SimilarityModel::load(loader, &reference, backend)?)
                    }
                    (None, SkillKind::ImageToText) => {
                        SerialSkill::Captioner(ImageCaptioner::load(loader, &reference, backend)?)
                    }
                    (None, _) => {
                        SerialSkill::Causal(TextGenerator::load(loader, &reference, backend)?)
                    }
                });
                let (jobs, queue) = mpsc::channel(options.max_queue.max(1));
                let backend = skill.backend();
                serial_worker::spawn(
                    model.to_owned(),
                    skill.clone(),
                    queue,
                    stats.clone(),
                    options.max_batch_size.max(1),
                );
                (Queue::Serial { jobs, skill }, backend)
            }
        };
        Ok(Self {
            model: model.to_owned(),
            skill,
            backend,
            load_time: started.elapsed(),
            queue,
            stats,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    pub fn queue_depth(&self) -> usize {
        self.stats.queue_depth.load(Ordering::Relaxed)
    }

    /// Queues `request` and waits for its answer; a full queue is `Busy`.
    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, AcceleratorError> {
        let started = Instant::now();
        let result = match (request, &self.queue) {
            (InferRequest::Embed { texts }, Queue::Embedding(queue)) => {
                self.embed(queue, texts).await
            }
            (request, Queue::Serial { jobs, skill }) if skill.accepts(&request) => {
                self.run_serial(jobs, request).await
            }
            (request, _) => {
                return Err(AcceleratorError::WrongTask {
                    model: self.model.clone(),
                    task: request.task(),
                    serves: self.serves(),
                })
            }
        };
        if matches!(result, Err(AcceleratorError::Busy(_))) {
            return result;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.latency.observe(started.elapsed().as_secs_f64());
        result
    }

    /// What requests this endpoint answers, for errors.
    pub fn serves(&self) -> &'static str {
        match &self.queue {
            Queue::Embedding(_) => "embeddings",
            Queue::Serial { skill, .. } => skill.serves(),
        }
    }

    async fn embed(
        &self,
        queue: &mpsc::Sender<Job>,
        texts: Vec<String>,
    ) -> Result<InferResponse, AcceleratorError> {
        if texts.is_empty() {
            return Err(AcceleratorError::InvalidRequest(
                "input is empty".to_owned(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(queue, Job { texts, reply })?;
        match answer.await {
            Ok(Ok((embeddings, tokens))) => Ok(InferResponse::Embeddings {
                model: self.model.clone(),
                backend: self.backend,
                embeddings,
                tokens,
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(AcceleratorError::Gone(self.model.clone())),
        }
    }

    async fn run_serial(
        &self,
        queue: &mpsc::Sender<SerialJob>,
        request: InferRequest,
    ) -> Result<InferResponse, AcceleratorError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(queue, SerialJob { request, reply })?;
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(AcceleratorError::Gone(self.model.clone())),
        }
    }

    /// Puts a job in the bounded queue; full means busy (counted as rejected).
    fn enqueue<T>(&self, queue: &mpsc::Sender<T>, job: T) -> Result<(), AcceleratorError> {
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        queue.try_send(job).map_err(|err| {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            match err {
                mpsc::error::TrySendError::Full(_) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    AcceleratorError::Busy(self.model.clone())
                }
                mpsc::error::TrySendError::Closed(_) => AcceleratorError::Gone(self.model.clone()),
            }
        })
    }

    pub fn status(&self) -> EndpointStatus {
        let ms = |q| self.stats.latency.quantile(q).map(|s| s * 1e3);
        EndpointStatus {
            model: self.model.clone(),
            skill: self.skill.name(),
            backend: self.backend,
            load_ms: self.load_time.as_secs_f64() * 1e3,
            requests: self.stats.requests.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            rejected: self.stats.rejected.load(Ordering::Relaxed),
            cancelled: self.stats.cancelled.load(Ordering::Relaxed),
            queue_depth: self.queue_depth(),
            latency_ms: Percentiles {
                p50: ms(0.50),
                p95: ms(0.95),
                p99: ms(0.99),
            },
            latency_seconds: self.stats.latency.snapshot(),
            batch_sizes: self.stats.batch_sizes.snapshot(),
        }
    }
}
