//! Generation endpoints run one request at a time (the model holds one KV
//! cache); requests wait in the endpoint's bounded queue, and a request whose
//! caller went away is dropped before it runs.

use super::endpoint::EndpointStats;
use super::{AcceleratorError, TextStream};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_skills::{
    GenerateOptions, Generation, SkillError, Text2TextGenerator, TextGenerator,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One queued generation.
#[derive(Debug)]
pub(crate) struct GenerationJob {
    pub prompt: String,
    pub options: GenerateOptions,
    pub stream: Option<TextStream>,
    pub reply: oneshot::Sender<Result<Generation, AcceleratorError>>,
}

/// The skills a generation endpoint can hold: both turn a prompt into text.
#[derive(Debug)]
pub(crate) enum Generator {
    /// GPT-2, OPT, LLaMA (safetensors or GGUF): the prompt is continued.
    Causal(TextGenerator),
    /// T5: the prompt is the encoder's input; the answer is the decoder's.
    Text2Text(Text2TextGenerator),
}

impl Generator {
    pub(crate) fn backend(&self) -> BackendKind {
        match self {
            Self::Causal(g) => g.backend(),
            Self::Text2Text(g) => g.backend(),
        }
    }

    fn generate(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        match self {
            Self::Causal(g) => g.generate(prompt, options, on_text),
            Self::Text2Text(g) => g.generate(prompt, options, on_text),
        }
    }
}

/// Resolves when nobody waits for the answer any more: the reply's receiver
/// was dropped, or the stream's receiver (a disconnected client) was.
async fn caller_gone(
    reply: &mut oneshot::Sender<Result<Generation, AcceleratorError>>,
    stream: Option<&TextStream>,
) {
    let stream_closed = async {
        match stream {
            Some(stream) => stream.closed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = reply.closed() => {},
        () = stream_closed => {},
    }
}

/// Starts the worker; it ends when the endpoint (the last sender) is dropped.
pub(crate) fn spawn(
    model: String,
    generator: Arc<Generator>,
    mut jobs: mpsc::Receiver<GenerationJob>,
    stats: Arc<EndpointStats>,
) {
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            if job.reply.is_closed() {
                continue;
            }
            stats.batch_sizes.observe(1.0);
            let generator = generator.clone();
            let GenerationJob {
                prompt,
                options,
                stream,
                mut reply,
            } = job;
            let cancel = options.cancel.clone();
            let watched = stream.clone();
            let mut task = tokio::task::spawn_blocking(move || {
                let mut on_text = |piece: &str| {
                    if let Some(stream) = &stream {
                        stream.send(piece);
                    }
                };
                generator.generate(&prompt, &options, &mut on_text)
            });
            // The blocking thread cannot be interrupted: when the caller
            // goes away (a dropped request, a closed stream) the flag stops
            // it before its next token, and the queue moves on.
            let result = tokio::select! {
                result = &mut task => result,
                () = caller_gone(&mut reply, watched.as_ref()) => {
                    tracing::info!(model, "the caller went away; generation cancelled");
                    stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    cancel.cancel();
                    task.await
                }
            };
            let answer = match result {
                Ok(Ok(generation)) => Ok(generation),
                Ok(Err(err)) => Err(AcceleratorError::Skill(err)),
                Err(join) => {
                    tracing::warn!(model, "generation task failed: {join}");
                    Err(AcceleratorError::Internal(join.to_string()))
                }
            };
            let _ = reply.send(answer);
        }
        tracing::debug!(model, "endpoint removed; generation worker stops");
    });
}
