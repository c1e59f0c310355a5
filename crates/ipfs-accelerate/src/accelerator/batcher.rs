//! Dynamic batching: gather queued requests up to a batch size or a wait,
//! drop those whose caller went away, run them together (length-sorted by
//! the skill), and answer each in order.

use super::endpoint::{EndpointOptions, EndpointStats};
use super::AcceleratorError;
use ipfs_accelerate_skills::{EmbedOptions, TextEmbedder};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};

/// What an embedding job answers: vectors and the tokens they took.
pub(crate) type JobResult = Result<(Vec<Vec<f32>>, usize), AcceleratorError>;

/// One queued request.
#[derive(Debug)]
pub(crate) struct Job {
    pub texts: Vec<String>,
    pub reply: oneshot::Sender<JobResult>,
}

/// Starts the batching loop; it ends when the endpoint (the last sender) is
/// dropped, freeing the model.
pub(crate) fn spawn(
    model: String,
    embedder: Arc<TextEmbedder>,
    mut jobs: mpsc::Receiver<Job>,
    options: EndpointOptions,
    stats: Arc<EndpointStats>,
) {
    tokio::spawn(async move {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            let mut texts = batch[0].texts.len();
            let deadline = Instant::now() + options.max_wait;
            while texts < options.max_batch_size {
                match timeout_at(deadline, jobs.recv()).await {
                    Ok(Some(job)) => {
                        texts += job.texts.len();
                        batch.push(job);
                    }
                    _ => break,
                }
            }
            stats.queue_depth.fetch_sub(batch.len(), Ordering::Relaxed);
            // A caller that went away gets no work done on its behalf.
            batch.retain(|job| !job.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            run_batch(&model, &embedder, batch, &options, &stats).await;
        }
        tracing::debug!(model, "endpoint removed; batcher stops");
    });
}

async fn run_batch(
    model: &str,
    embedder: &Arc<TextEmbedder>,
    batch: Vec<Job>,
    options: &EndpointOptions,
    stats: &EndpointStats,
) {
    let sizes: Vec<usize> = batch.iter().map(|j| j.texts.len()).collect();
    let all: Vec<String> = batch.iter().flat_map(|j| j.texts.iter().cloned()).collect();
    stats.batch_sizes.observe(all.len() as f64);
    let embedder = embedder.clone();
    let embed_options = EmbedOptions {
        batch_size: options.max_batch_size.max(1),
        sort_by_length: true,
    };
    let result = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        embedder.embed_with_usage(&refs, embed_options)
    })
    .await;
    match result {
        Ok(Ok((vectors, tokens))) => {
            let mut vectors = vectors.into_iter();
            let mut tokens = tokens.into_iter();
            for (job, size) in batch.into_iter().zip(sizes) {
                let mine: Vec<Vec<f32>> = vectors.by_ref().take(size).collect();
                let job_tokens: usize = tokens.by_ref().take(size).sum();
                let _ = job.reply.send(Ok((mine, job_tokens)));
            }
        }
        Ok(Err(err)) => {
            let text = err.to_string();
            tracing::warn!(model, "batch failed: {text}");
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(AcceleratorError::Internal(text.clone())));
            }
        }
        Err(join) => {
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(AcceleratorError::Internal(join.to_string())));
            }
        }
    }
}
