//! GGUF generation on llama.cpp (the `llamacpp` backend), with continuous
//! batching: every request is a *stream* with its own sequence in one
//! llama.cpp context, and one scheduler thread runs whatever the streams
//! ask for as one batch per step. A request that arrives joins at the next
//! step (its prompt goes in beside the others' single tokens), and one that
//! finishes leaves; the token loop of each stream ([`super::decode_loop`]:
//! sampling, stop strings, streaming) is the same as on candle.
//!
//! Each stream's KV cache is its own (`kv_unified = false`), so what one
//! stream computes does not depend on the others: greedy output alone and
//! in a batch are the same (tested on SmolLM2).

use crate::SkillError;
use candle_core::{Device, Tensor};
use ipfs_accelerate_backends::llama_cpp::{llama_backend, LlamaBackend};
use ipfs_accelerate_backends::{BackendError, BackendKind};
use ipfs_accelerate_models::CausalLm;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many requests decode together (sequences in the context).
pub const STREAMS_ENV: &str = "IPFS_ACCELERATE_LLAMA_CPP_STREAMS";
/// Positions each stream holds (at most the model's own context length).
pub const CONTEXT_ENV: &str = "IPFS_ACCELERATE_LLAMA_CPP_CONTEXT";
/// CPU threads llama.cpp computes with (default: `RAYON_NUM_THREADS`, as
/// candle, else every core).
pub const THREADS_ENV: &str = "IPFS_ACCELERATE_LLAMA_CPP_THREADS";

const DEFAULT_STREAMS: u32 = 8;
const DEFAULT_CONTEXT: u32 = 2048;
/// Tokens in one llama.cpp batch: a longer prompt goes in over several
/// steps.
const BATCH_TOKENS: u32 = 512;
/// How long a step waits for streams that are between tokens (sampling,
/// decoding text) before it runs without them: long enough for that work,
/// short next to a step.
const GATHER_WAIT: Duration = Duration::from_millis(2);
/// How long a step waits for a late stream whose absence would split it
/// into two passes: about what the second pass would cost (SmolLM2 Q4_1 on
/// 2 Xeon cores: a step of 8 sequences in one pass 10 ms, of 7 in two
/// 16 ms).
const SPLIT_WAIT: Duration = Duration::from_millis(6);

/// The context's shape, from the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineShape {
    streams: u32,
    context: u32,
    threads: u32,
}

impl EngineShape {
    /// [`STREAMS_ENV`], [`CONTEXT_ENV`] and [`THREADS_ENV`], or the
    /// defaults (8 × 2048, every core).
    pub(crate) fn from_env() -> Result<Self, SkillError> {
        let read = |name: &str, default: u32, max: u32| -> Result<u32, SkillError> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(text) => match text.trim().parse::<u32>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(SkillError::InvalidInput(format!(
                        "{name}={text:?}: expected a whole number from 1 to {max}"
                    ))),
                },
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let rayon = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|&n| n > 0);
        Ok(Self {
            streams: read(STREAMS_ENV, DEFAULT_STREAMS, 64)?,
            context: read(CONTEXT_ENV, DEFAULT_CONTEXT, 1 << 20)?,
            threads: read(THREADS_ENV, rayon.unwrap_or(cores), 1024)?,
        })
    }
}

/// What a stream asks the scheduler.
enum Message {
    /// Run `ids` after the sequence's cached tokens; answer the logits of
    /// the last one.
    Forward {
        seq: i32,
        ids: Vec<u32>,
        reply: mpsc::Sender<Result<Vec<f32>, String>>,
    },
    /// Forget the sequence's cached tokens.
    Clear { seq: i32 },
}

/// The sequence ids not held by a stream.
#[derive(Debug)]
struct FreeSeqs {
    free: Mutex<Vec<i32>>,
    returned: Condvar,
}

/// A GGUF model loaded in llama.cpp, shared by every request.
#[derive(Debug)]
pub(crate) struct LlamaCppEngine {
    name: String,
    messages: mpsc::Sender<Message>,
    seqs: Arc<FreeSeqs>,
    /// Positions each stream holds.
    context: usize,
    streams: usize,
    /// The most streams one step has run together.
    peak: Arc<AtomicUsize>,
}

impl LlamaCppEngine {
    /// Loads `path` (a GGUF file from the loader) on llama.cpp and starts
    /// its scheduler thread.
    pub(crate) fn load(name: &str, path: &Path, shape: EngineShape) -> Result<Self, SkillError> {
        let backend = llama_backend()?;
        let (messages, inbox) = mpsc::channel();
        let (ready, started) = mpsc::channel();
        let thread_name = name.to_owned();
        let path = path.to_path_buf();
        let peak = Arc::new(AtomicUsize::new(0));
        let steps = Steps {
            inbox,
            peak: peak.clone(),
        };
        std::thread::Builder::new()
            .name("llama.cpp".to_owned())
            .spawn(move || scheduler(backend, &thread_name, &path, shape, steps, ready))
            .map_err(|e| unavailable(format!("cannot start the scheduler thread: {e}")))?;
        let context = started
            .recv()
            .map_err(|_| unavailable("the scheduler thread stopped while loading".to_owned()))?
            .map_err(|detail| SkillError::Weights {
                model: name.to_owned(),
                source: detail.into(),
            })?;
        Ok(Self {
            name: name.to_owned(),
            messages,
            seqs: Arc::new(FreeSeqs {
                free: Mutex::new((0..shape.streams as i32).rev().collect()),
                returned: Condvar::new(),
            }),
            context,
            streams: shape.streams as usize,
            peak,
        })
    }

    /// The most requests one step has decoded together so far.
    pub(crate) fn peak_streams(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// How many requests decode together.
    pub(crate) fn streams(&self) -> usize {
        self.streams
    }

    /// A stream for one request; waits while every sequence is in use.
    pub(crate) fn stream(&self) -> Result<LlamaCppStream, SkillError> {
        let mut free = self
            .seqs
            .free
            .lock()
            .map_err(|_| unavailable("the sequence table is poisoned".to_owned()))?;
        // The lowest free id: llama.cpp runs sequences with consecutive ids
        // in one pass (see `step`), so ids in use are kept packed.
        let seq = loop {
            if let Some(at) = free
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| **s)
                .map(|(i, _)| i)
            {
                break free.swap_remove(at);
            }
            free = self
                .seqs
                .returned
                .wait(free)
                .map_err(|_| unavailable("the sequence table is poisoned".to_owned()))?;
        };
        Ok(LlamaCppStream {
            name: self.name.clone(),
            seq,
            messages: self.messages.clone(),
            seqs: self.seqs.clone(),
            context: self.context,
        })
    }
}

fn unavailable(detail: String) -> SkillError {
    SkillError::Backend(BackendError::Unavailable {
        kind: BackendKind::LlamaCpp,
        detail,
    })
}

/// One request's sequence; implements [`CausalLm`] so the shared token
/// loop drives it. Dropping it frees the sequence.
#[derive(Debug)]
pub(crate) struct LlamaCppStream {
    name: String,
    seq: i32,
    messages: mpsc::Sender<Message>,
    seqs: Arc<FreeSeqs>,
    context: usize,
}

impl CausalLm for LlamaCppStream {
    fn forward(&mut self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let (reply, answer) = mpsc::channel();
        self.messages
            .send(Message::Forward {
                seq: self.seq,
                ids: ids.to_vec(),
                reply,
            })
            .map_err(|_| candle_core::Error::Msg("llama.cpp's scheduler has stopped".into()))?;
        let logits = answer
            .recv()
            .map_err(|_| candle_core::Error::Msg("llama.cpp's scheduler has stopped".into()))?
            .map_err(|e| candle_core::Error::Msg(format!("{}: llama.cpp: {e}", self.name)))?;
        let vocab = logits.len();
        Tensor::from_vec(logits, vocab, &Device::Cpu)
    }

    fn reset(&mut self) {
        // A stopped scheduler has nothing left to forget.
        let _ = self.messages.send(Message::Clear { seq: self.seq });
    }

    fn context_length(&self) -> Option<usize> {
        Some(self.context)
    }
}

impl Drop for LlamaCppStream {
    fn drop(&mut self) {
        // Cleared before it is free: the next holder's first message comes
        // after this one in the scheduler's queue.
        let _ = self.messages.send(Message::Clear { seq: self.seq });
        if let Ok(mut free) = self.seqs.free.lock() {
            free.push(self.seq);
            self.seqs.returned.notify_one();
        }
    }
}

/// What the scheduler thread reads and reports.
struct Steps {
    inbox: mpsc::Receiver<Message>,
    peak: Arc<AtomicUsize>,
}

/// A stream's request in the scheduler: its tokens and how many went in.
struct Pending {
    seq: i32,
    ids: Vec<u32>,
    done: usize,
    reply: mpsc::Sender<Result<Vec<f32>, String>>,
}

/// Loads the model and context on this thread (llama.cpp's context borrows
/// the model, and neither leaves the thread), answers `ready` with the
/// positions per stream, then runs steps until every stream and the engine
/// are gone.
fn scheduler(
    backend: &'static LlamaBackend,
    name: &str,
    path: &Path,
    shape: EngineShape,
    steps: Steps,
    ready: mpsc::Sender<Result<usize, String>>,
) {
    let model = match LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()) {
        Ok(model) => model,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "llama.cpp cannot load {}: {e}",
                path.display()
            )));
            return;
        }
    };
    let context = shape.context.min(model.n_ctx_train().max(1));
    let threads = shape.threads as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context * shape.streams))
        .with_n_seq_max(shape.streams)
        .with_kv_unified(false)
        .with_n_batch(BATCH_TOKENS)
        .with_n_ubatch(BATCH_TOKENS)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(format!("llama.cpp cannot make a context: {e}")));
            return;
        }
    };
    if ready.send(Ok(context as usize)).is_err() {
        return;
    }
    tracing::debug!(
        model = name,
        streams = shape.streams,
        context,
        "llama.cpp ready"
    );
    Scheduler {
        ctx,
        vocab: model.n_vocab(),
        batch: LlamaBatch::new(BATCH_TOKENS as usize, 1),
        pending: Vec::new(),
        positions: HashMap::new(),
    }
    .run(&steps);
}

/// The scheduler thread's state.
struct Scheduler<'m> {
    ctx: LlamaContext<'m>,
    vocab: i32,
    batch: LlamaBatch<'static>,
    /// Requests not answered yet.
    pending: Vec<Pending>,
    /// The next position of each sequence mid-generation: a step waits,
    /// briefly, for the next request of each.
    positions: HashMap<i32, i32>,
}

impl Scheduler<'_> {
    /// Gathers what the streams ask, runs it as one batch, answers each;
    /// until every sender is gone.
    fn run(mut self, steps: &Steps) {
        let inbox = &steps.inbox;
        loop {
            if self.pending.is_empty() {
                match inbox.recv() {
                    Ok(message) => self.take(message),
                    Err(_) => return,
                }
            }
            let now = Instant::now();
            let (deadline, split_deadline) = (now + GATHER_WAIT, now + SPLIT_WAIT);
            while self.missing_a_stream() {
                let until = if self.a_missing_stream_splits_the_pass() {
                    split_deadline
                } else {
                    deadline
                };
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match inbox.recv_timeout(left) {
                    Ok(message) => self.take(message),
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            while let Ok(message) = inbox.try_recv() {
                self.take(message);
            }
            if self.pending.is_empty() {
                continue;
            }
            steps
                .peak
                .fetch_max(largest_consecutive_run(&self.pending), Ordering::Relaxed);
            self.step();
        }
    }

    /// The sequences mid-generation that have not asked for their next
    /// step.
    fn missing_streams(&self) -> impl Iterator<Item = i32> + '_ {
        self.positions
            .keys()
            .copied()
            .filter(|&seq| !self.pending.iter().any(|p| p.seq == seq))
    }

    /// Whether a sequence mid-generation has not asked for its next step.
    fn missing_a_stream(&self) -> bool {
        self.missing_streams().next().is_some()
    }

    /// Whether such a sequence's id lies between the ids that did ask: a
    /// live sequence gets no placeholder, so the step would run as two
    /// passes.
    fn a_missing_stream_splits_the_pass(&self) -> bool {
        let asked = self.pending.iter().map(|p| p.seq);
        let (Some(low), Some(high)) = (asked.clone().min(), asked.max()) else {
            return false;
        };
        self.missing_streams().any(|seq| low < seq && seq < high)
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Forward { seq, ids, reply } => {
                if ids.is_empty() {
                    let _ = reply.send(Err("no tokens to run".to_owned()));
                    return;
                }
                let vocab = self.vocab;
                if let Some(id) = ids
                    .iter()
                    .find(|&&id| i32::try_from(id).map_or(true, |id| id >= vocab))
                {
                    let _ = reply.send(Err(format!("token id {id} is outside the vocabulary")));
                    return;
                }
                self.pending.push(Pending {
                    seq,
                    ids,
                    done: 0,
                    reply,
                });
            }
            Message::Clear { seq } => self.clear(seq),
        }
    }

    fn clear(&mut self, seq: i32) {
        if let Ok(seq_id) = u32::try_from(seq) {
            // Only fails for ids out of range, which ours are not.
            let _ = self.ctx.clear_kv_cache_seq(Some(seq_id), None, None);
        }
        self.positions.remove(&seq);
    }

    /// One llama.cpp batch. Room goes first to the streams that decode one
    /// token, then to prompts ([`step_takes`]), and tokens go in ordered by
    /// sequence id: llama.cpp splits a
    /// batch into passes of sequences with consecutive ids, so sorted ids,
    /// with placeholders in the gaps finished streams leave
    /// ([`placeholder_seqs`]), make one pass of all the decoding streams.
    fn step(&mut self) {
        let pending = &mut self.pending;
        let batch = &mut self.batch;
        batch.clear();
        // How many of each pending request's tokens go in this step.
        let lefts: Vec<usize> = pending.iter().map(|p| p.ids.len() - p.done).collect();
        let takes = step_takes(&lefts, BATCH_TOKENS as usize);
        let mut in_batch: Vec<usize> = (0..pending.len()).filter(|&i| takes[i] > 0).collect();
        in_batch.sort_by_key(|&i| pending[i].seq);
        let seqs: Vec<i32> = in_batch.iter().map(|&i| pending[i].seq).collect();
        let mut placeholders = placeholder_seqs(&seqs, &self.positions);
        if takes.iter().sum::<usize>() + placeholders.len() > BATCH_TOKENS as usize {
            placeholders.clear();
        }
        // (pending index, batch index of its last token) for those finishing.
        let mut outputs: Vec<(usize, i32)> = Vec::new();
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut next_placeholder = placeholders.iter().peekable();
        for &index in &in_batch {
            let p = &mut pending[index];
            // Placeholders go in sequence order, before the first
            // sequence above them.
            while let Some(&&free) = next_placeholder.peek() {
                if free > p.seq {
                    break;
                }
                next_placeholder.next();
                // A free sequence's cache is empty; position 0, no logits.
                if let Err(e) = batch.add(LlamaToken::new(0), 0, &[free], false) {
                    tracing::debug!(seq = free, error = %e, "placeholder not added");
                }
            }
            let position = self.positions.entry(p.seq).or_insert(0);
            for k in 0..takes[index] {
                let id = p.ids[p.done + k];
                let last = p.done + k + 1 == p.ids.len();
                // Ids were checked against the vocabulary when they came in.
                if let Err(e) = batch.add(LlamaToken::new(id as i32), *position, &[p.seq], last) {
                    refused.push((index, e.to_string()));
                    break;
                }
                *position += 1;
                if last {
                    outputs.push((index, batch.n_tokens() - 1));
                }
            }
            p.done += takes[index];
        }
        let result = if batch.n_tokens() > 0 {
            self.ctx.decode(batch).map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        // Answered with logits (kept), or failed (their caches are dropped).
        let mut answered: Vec<usize> = Vec::new();
        let mut failed: Vec<usize> = Vec::new();
        for (index, why) in refused {
            let _ = pending[index].reply.send(Err(why));
            failed.push(index);
        }
        match result {
            Ok(()) => {
                for (index, at) in outputs {
                    if failed.contains(&index) {
                        continue;
                    }
                    let logits = self.ctx.get_logits_ith(at).to_vec();
                    let _ = pending[index].reply.send(Ok(logits));
                    answered.push(index);
                }
            }
            Err(e) => {
                // The sequences in this batch are in an unknown state: each
                // request fails.
                for &index in &in_batch {
                    if !failed.contains(&index) {
                        let _ = pending[index].reply.send(Err(e.clone()));
                        failed.push(index);
                    }
                }
            }
        }
        let failed_seqs: Vec<i32> = failed.iter().map(|&index| pending[index].seq).collect();
        let mut done: Vec<usize> = answered.into_iter().chain(failed).collect();
        done.sort_unstable();
        for index in done.into_iter().rev() {
            pending.remove(index);
        }
        // Failed sequences are in an unknown state; placeholders held a
        // token only for this step.
        for seq in failed_seqs.into_iter().chain(placeholders) {
            self.clear(seq);
        }
    }
}

/// How many tokens each request (`lefts`: tokens it has left to run) puts
/// in a step of at most `room` tokens. One for each stream that decodes
/// (one left), first; then the prompts, each the same number of tokens:
/// the shortest prompt's, or their share of the room if less. llama.cpp
/// (with a KV cache per sequence) runs a batch in passes that take the same
/// number of tokens from each sequence, so prompts of different lengths
/// side by side would cost a pass for each length; this way their tokens go
/// in one pass, and a long prompt does not hold the others back.
fn step_takes(lefts: &[usize], room: usize) -> Vec<usize> {
    let mut room = room;
    let mut takes = vec![0usize; lefts.len()];
    for (take, &left) in takes.iter_mut().zip(lefts) {
        if left == 1 && room > 0 {
            *take = 1;
            room -= 1;
        }
    }
    let prompts = lefts.iter().filter(|&&left| left > 1).count();
    let Some(shortest) = lefts.iter().filter(|&&left| left > 1).min() else {
        return takes;
    };
    let chunk = (*shortest).min(room / prompts).max(1);
    for (take, &left) in takes.iter_mut().zip(lefts) {
        if left > 1 && room > 0 {
            *take = chunk.min(room);
            room -= *take;
        }
    }
    takes
}

/// The free sequence ids between a step's lowest and highest sequence:
/// llama.cpp runs a batch's sequences in one pass only when their ids are
/// consecutive (with a KV cache per sequence it splits at the first gap),
/// and a second pass costs nearly as much as the first. A stream that
/// finishes early leaves such a gap among the ones still decoding, so each
/// free id in it gets a placeholder token: one more row in the pass (its
/// cache cleared after the step) instead of a second pass. Ids of live
/// sequences (`positions`) are never used; a gap there stays.
fn placeholder_seqs(seqs: &[i32], positions: &HashMap<i32, i32>) -> Vec<i32> {
    let (Some(&low), Some(&high)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Vec::new();
    };
    (low..high)
        .filter(|seq| !seqs.contains(seq) && !positions.contains_key(seq))
        .collect()
}

/// The most sequences one pass can hold this step: llama.cpp (with a KV
/// cache per sequence) puts sequences in one pass only when their ids are
/// consecutive.
fn largest_consecutive_run(pending: &[Pending]) -> usize {
    let mut seqs: Vec<i32> = pending.iter().map(|p| p.seq).collect();
    seqs.sort_unstable();
    let (mut best, mut run) = (0, 0);
    for (i, seq) in seqs.iter().enumerate() {
        run = if i > 0 && *seq == seqs[i - 1] + 1 {
            run + 1
        } else {
            1
        };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decoding_streams_go_first_then_prompts_in_equal_chunks() {
        // Eight prompts at once: each its first 9 tokens (the shortest).
        assert_eq!(step_takes(&[12, 12, 11, 11, 9, 10, 13, 9], 512), vec![9; 8]);
        // Two decoding streams and two prompts.
        assert_eq!(step_takes(&[1, 40, 1, 7], 512), vec![1, 7, 1, 7]);
        // A long prompt alone fills the room; beside another, both share it.
        assert_eq!(step_takes(&[1, 900], 512), vec![1, 511]);
        assert_eq!(step_takes(&[900, 800], 512), vec![256, 256]);
        // Less room than prompts: one token each while it lasts.
        assert_eq!(step_takes(&[1, 1, 5, 6, 7], 4), vec![1, 1, 1, 1, 0]);
        assert_eq!(step_takes(&[1, 1], 1), vec![1, 0]);
        assert!(step_takes(&[], 512).is_empty());
    }

    #[test]
    fn placeholders_fill_free_gaps_between_the_steps_sequences() {
        let live = |seqs: &[i32]| -> HashMap<i32, i32> { seqs.iter().map(|&s| (s, 5)).collect() };
        // Stream 3 finished: its id is free, so a placeholder keeps one pass.
        assert_eq!(
            placeholder_seqs(&[0, 1, 2, 4, 5], &live(&[0, 1, 2, 4, 5])),
            vec![3]
        );
        // Stream 2 is live but late for this step: its cache is never
        // touched, the gap stays.
        assert!(placeholder_seqs(&[0, 1, 3], &live(&[0, 1, 2, 3])).is_empty());
        assert_eq!(placeholder_seqs(&[1, 4], &live(&[1, 4])), vec![2, 3]);
        // Nothing outside the step's range, nothing for one sequence.
        assert!(placeholder_seqs(&[2, 3], &HashMap::new()).is_empty());
        assert!(placeholder_seqs(&[6], &HashMap::new()).is_empty());
        assert!(placeholder_seqs(&[], &HashMap::new()).is_empty());
    }
}
