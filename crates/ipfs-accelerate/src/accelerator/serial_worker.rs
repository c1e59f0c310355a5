//! Endpoints whose model runs one request at a time: generation (the model
//! holds one KV cache), transcription, similarity and image-to-text (embedding
//! requests to a similarity model that wait together run as one call).
//! Requests wait in the endpoint's bounded queue, and a request whose
//! caller went away is dropped before it runs; a generation whose caller
//! goes away while it runs is cancelled before its next token.

use super::endpoint::EndpointStats;
use super::request::{ChatMessage, ChatPart, EmbedInput, MediaInput};
use super::{AcceleratorError, InferRequest, InferResponse, TextStream};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_media::RgbImage;
use ipfs_accelerate_skills::{
    CaptionOptions, EmbedItem, ImageCaptioner, Media, SimilarityModel, SimilarityOptions,
    SkillError, SpeechRecognizer, Text2TextGenerator, TextGenerator,
};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What a queued job answers.
pub(crate) type Reply = oneshot::Sender<Result<InferResponse, AcceleratorError>>;

/// One queued request.
#[derive(Debug)]
pub(crate) struct SerialJob {
    pub request: InferRequest,
    pub reply: Reply,
}

/// The skills an endpoint runs one request at a time.
// One per endpoint, behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum SerialSkill {
    /// GPT-2, OPT, LLaMA (safetensors or GGUF): the prompt is continued.
    Causal(TextGenerator),
    /// T5: the prompt is the encoder's input; the answer is the decoder's.
    Text2Text(Text2TextGenerator),
    /// Whisper, wav2vec2.
    Speech(SpeechRecognizer),
    /// CLIP, CLAP, X-CLIP.
    Similarity(SimilarityModel),
    /// LLaVA, LLaVA-NeXT.
    Captioner(ImageCaptioner),
}

impl SerialSkill {
    pub(crate) fn backend(&self) -> BackendKind {
        match self {
            Self::Causal(s) => s.backend(),
            Self::Text2Text(s) => s.backend(),
            Self::Speech(s) => s.backend(),
            Self::Similarity(s) => s.backend(),
            Self::Captioner(s) => s.backend(),
        }
    }

    /// How many requests run at once: a generator on llama.cpp decodes
    /// several together (continuous batching); everything else runs one.
    pub(crate) fn concurrency(&self) -> usize {
        match self {
            Self::Causal(g) => g.concurrent_requests().max(1),
            _ => 1,
        }
    }

    /// What requests it answers, for errors.
    pub(crate) fn serves(&self) -> &'static str {
        match self {
            Self::Causal(_) => "completions and chat",
            Self::Text2Text(_) => "completions",
            Self::Speech(_) => "transcriptions",
            Self::Similarity(_) => "similarity and embeddings",
            Self::Captioner(_) => "chat with an image and image-to-text",
        }
    }

    /// Whether `request` is this skill's task (checked before queueing).
    pub(crate) fn accepts(&self, request: &InferRequest) -> bool {
        matches!(
            (self, request),
            (
                Self::Causal(_),
                InferRequest::Generate { .. } | InferRequest::Chat { .. }
            ) | (Self::Text2Text(_), InferRequest::Generate { .. })
                | (Self::Speech(_), InferRequest::Transcribe { .. })
                | (
                    Self::Similarity(_),
                    InferRequest::Embed { .. }
                        | InferRequest::EmbedItems { .. }
                        | InferRequest::Similarity { .. }
                )
                | (
                    Self::Captioner(_),
                    InferRequest::Chat { .. } | InferRequest::Caption { .. }
                )
        )
    }

    /// Runs `request` on this thread (a blocking one).
    fn run(&self, model: &str, request: InferRequest) -> Result<InferResponse, AcceleratorError> {
        let backend = self.backend();
        let model = model.to_owned();
        let stream = request.stream().cloned();
        let mut on_text = |piece: &str| {
            if let Some(stream) = &stream {
                stream.send(piece);
            }
        };
        let generation = |generation| InferResponse::Generation {
            model: model.clone(),
            backend,
            generation,
        };
        match (self, request) {
            (
                Self::Causal(g),
                InferRequest::Generate {
                    prompt, options, ..
                },
            ) => Ok(generation(g.generate(&prompt, &options, &mut on_text)?)),
            (
                Self::Text2Text(g),
                InferRequest::Generate {
                    prompt, options, ..
                },
            ) => Ok(generation(g.generate(&prompt, &options, &mut on_text)?)),
            (
                Self::Causal(g),
                InferRequest::Chat {
                    messages, options, ..
                },
            ) => {
                let messages = text_messages(&messages)?;
                Ok(generation(g.generate_chat_messages(
                    &messages,
                    &options,
                    &mut on_text,
                )?))
            }
            (
                Self::Captioner(c),
                InferRequest::Chat {
                    messages, options, ..
                },
            ) => {
                let (messages, image) = image_messages(&messages)?;
                let prompt = c.chat_prompt(&messages)?;
                let caption = c.caption(
                    &image,
                    &prompt,
                    &options,
                    CaptionOptions::default(),
                    &mut on_text,
                )?;
                Ok(generation(caption.generation))
            }
            (
                Self::Captioner(c),
                InferRequest::Caption {
                    image,
                    prompt,
                    options,
                    ..
                },
            ) => {
                let caption = c.caption(
                    &image,
                    &prompt,
                    &options,
                    CaptionOptions::default(),
                    &mut on_text,
                )?;
                Ok(generation(caption.generation))
            }
            (Self::Speech(s), InferRequest::Transcribe { audio, options }) => {
                let duration_s = audio.samples.len() as f64 / f64::from(audio.sample_rate.max(1));
                Ok(InferResponse::Transcription {
                    transcription: s.transcribe(&audio, &options)?,
                    model,
                    backend,
                    duration_s,
                })
            }
            (Self::Similarity(s), InferRequest::Similarity { texts, media }) => {
                let media = match &media {
                    MediaInput::Image(image) => Media::Image(image),
                    MediaInput::Audio(audio) => Media::Audio(audio),
                    MediaInput::Video(frames) => Media::Video(frames),
                };
                Ok(InferResponse::Similarity {
                    similarity: s.score(media, &texts, SimilarityOptions::default())?,
                    model,
                    backend,
                })
            }
            (Self::Similarity(s), InferRequest::Embed { texts }) => {
                let items: Vec<EmbedItem<'_>> = texts.iter().map(|t| EmbedItem::Text(t)).collect();
                Ok(InferResponse::Embeddings {
                    embeddings: s.embed(&items)?,
                    tokens: 0,
                    model,
                    backend,
                })
            }
            (Self::Similarity(s), InferRequest::EmbedItems { items }) => {
                let items: Vec<EmbedItem<'_>> = items
                    .iter()
                    .map(|item| match item {
                        EmbedInput::Text(t) => EmbedItem::Text(t),
                        EmbedInput::Image(i) => EmbedItem::Image(i),
                        EmbedInput::Audio(a) => EmbedItem::Audio(a),
                    })
                    .collect();
                Ok(InferResponse::Embeddings {
                    embeddings: s.embed(&items)?,
                    tokens: 0,
                    model,
                    backend,
                })
            }
            (skill, request) => Err(AcceleratorError::WrongTask {
                model,
                task: request.task(),
                serves: skill.serves(),
            }),
        }
    }
}

/// Messages for a text-only template: each content a string (text parts
/// joined by newlines, as other OpenAI-compatible servers join them).
fn text_messages(messages: &[ChatMessage]) -> Result<Value, SkillError> {
    let mut rendered = Vec::with_capacity(messages.len());
    for message in messages {
        let mut texts = Vec::with_capacity(message.content.len());
        for part in &message.content {
            match part {
                ChatPart::Text(text) => texts.push(text.as_str()),
                ChatPart::Image(_) => {
                    return Err(SkillError::InvalidInput(
                        "this model reads text only; image content parts need an image-to-text model (LLaVA)".to_owned(),
                    ))
                }
            }
        }
        rendered.push(json!({"role": message.role, "content": texts.join("\n")}));
    }
    Ok(Value::Array(rendered))
}

/// Messages for a processor's template: content as typed parts
/// (`{"type": "text", "text"}`, `{"type": "image"}`), and the one image.
fn image_messages(messages: &[ChatMessage]) -> Result<(Value, RgbImage), SkillError> {
    let mut image = None;
    let mut rendered = Vec::with_capacity(messages.len());
    for message in messages {
        let mut parts = Vec::with_capacity(message.content.len());
        for part in &message.content {
            match part {
                ChatPart::Text(text) => parts.push(json!({"type": "text", "text": text})),
                ChatPart::Image(pixels) => {
                    if image.replace(pixels.clone()).is_some() {
                        return Err(SkillError::InvalidInput(
                            "the conversation holds more than one image; this model takes one"
                                .to_owned(),
                        ));
                    }
                    parts.push(json!({"type": "image"}));
                }
            }
        }
        rendered.push(json!({"role": message.role, "content": parts}));
    }
    let image = image.ok_or_else(|| {
        SkillError::InvalidInput(
            "this model answers about an image: give one image content part (image_url)".to_owned(),
        )
    })?;
    Ok((Value::Array(rendered), image))
}

/// Resolves when nobody waits for the answer any more: the reply's receiver
/// was dropped, or the stream's receiver (a disconnected client) was.
async fn caller_gone(reply: &mut Reply, stream: Option<&TextStream>) {
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

/// The inputs of an embedding request to a similarity model (a dual
/// encoder embeds any mix of them in one call).
fn embed_inputs(request: &InferRequest) -> Option<Vec<EmbedInput>> {
    match request {
        InferRequest::Embed { texts } => {
            Some(texts.iter().cloned().map(EmbedInput::Text).collect())
        }
        InferRequest::EmbedItems { items } => Some(items.clone()),
        _ => None,
    }
}

/// Starts the worker; it ends when the endpoint (the last sender) is
/// dropped. Embedding requests to a similarity model that are waiting
/// together (up to `max_batch` inputs) run as one call, which batches
/// CLIP's images through the vision tower; anything else runs alone.
pub(crate) fn spawn(
    model: String,
    skill: Arc<SerialSkill>,
    mut jobs: mpsc::Receiver<SerialJob>,
    stats: Arc<EndpointStats>,
    max_batch: usize,
) {
    tokio::spawn(async move {
        // A job taken from the queue while gathering a batch it could not
        // join: it runs next.
        let mut next: Option<SerialJob> = None;
        // Only a dual encoder's embeddings run together.
        let gathers = matches!(*skill, SerialSkill::Similarity(_));
        // Requests running at once (llama.cpp's streams): each takes a
        // permit, so the queue holds the rest.
        let concurrency = skill.concurrency();
        let running = Arc::new(tokio::sync::Semaphore::new(concurrency));
        loop {
            // With several requests at once, a free slot comes first: the
            // job then waits in the queue (counted there, and dropped there
            // if its caller goes away), not here.
            let permit = if concurrency > 1 {
                match running.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => break,
                }
            } else {
                None
            };
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.recv().await {
                    Some(job) => {
                        stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                        job
                    }
                    None => break,
                },
            };
            if job.reply.is_closed() {
                continue;
            }
            let Some(first_inputs) = gathers.then(|| embed_inputs(&job.request)).flatten() else {
                stats.batch_sizes.observe(1.0);
                let Some(permit) = permit else {
                    run_one(&model, &skill, job, &stats).await;
                    continue;
                };
                let (model, skill, stats) = (model.clone(), skill.clone(), stats.clone());
                tokio::spawn(async move {
                    run_one(&model, &skill, job, &stats).await;
                    drop(permit);
                });
                continue;
            };
            let mut batch = vec![(job, first_inputs.len())];
            let mut inputs = first_inputs;
            while inputs.len() < max_batch {
                let Ok(queued) = jobs.try_recv() else {
                    break;
                };
                stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                if queued.reply.is_closed() {
                    continue;
                }
                match embed_inputs(&queued.request) {
                    Some(more) => {
                        batch.push((queued, more.len()));
                        inputs.extend(more);
                    }
                    None => {
                        next = Some(queued);
                        break;
                    }
                }
            }
            stats.batch_sizes.observe(inputs.len() as f64);
            if batch.len() == 1 {
                let (job, _) = batch.remove(0);
                run_one(&model, &skill, job, &stats).await;
                continue;
            }
            run_embedding_batch(&model, &skill, batch, inputs, &stats).await;
        }
        tracing::debug!(model, "endpoint removed; worker stops");
    });
}

/// Runs gathered embedding requests as one call and answers each with its
/// own vectors, in order. If the call fails (one request's input may be
/// what the model cannot take) each runs alone, so one client's bad input
/// is nobody else's error.
async fn run_embedding_batch(
    model: &str,
    skill: &Arc<SerialSkill>,
    batch: Vec<(SerialJob, usize)>,
    inputs: Vec<EmbedInput>,
    stats: &Arc<EndpointStats>,
) {
    let runner = skill.clone();
    let name = model.to_owned();
    let combined = InferRequest::EmbedItems { items: inputs };
    let result = tokio::task::spawn_blocking(move || runner.run(&name, combined)).await;
    let Ok(Ok(InferResponse::Embeddings {
        embeddings,
        backend,
        ..
    })) = result
    else {
        for (job, _) in batch {
            run_one(model, skill, job, stats).await;
        }
        return;
    };
    let mut vectors = embeddings.into_iter();
    for (job, count) in batch {
        let _ = job.reply.send(Ok(InferResponse::Embeddings {
            model: model.to_owned(),
            backend,
            embeddings: vectors.by_ref().take(count).collect(),
            tokens: 0,
        }));
    }
}

/// Runs one job, cancelling a generation whose caller goes away.
async fn run_one(
    model: &str,
    skill: &Arc<SerialSkill>,
    job: SerialJob,
    stats: &Arc<EndpointStats>,
) {
    let SerialJob { request, mut reply } = job;
    let cancel = request.generate_options().map(|o| o.cancel.clone());
    let watched = request.stream().cloned();
    let runner = skill.clone();
    let name = model.to_owned();
    let mut task = tokio::task::spawn_blocking(move || runner.run(&name, request));
    // The blocking thread cannot be interrupted: when the caller goes away
    // (a dropped request, a closed stream) the flag stops a generation
    // before its next token, and the queue moves on.
    let result = tokio::select! {
        result = &mut task => result,
        () = caller_gone(&mut reply, watched.as_ref()) => {
            if let Some(cancel) = &cancel {
                tracing::info!(model, "the caller went away; generation cancelled");
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                cancel.cancel();
            }
            task.await
        }
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(join) => {
            tracing::warn!(model, "request task failed: {join}");
            Err(AcceleratorError::Internal(join.to_string()))
        }
    };
    let _ = reply.send(answer);
}
