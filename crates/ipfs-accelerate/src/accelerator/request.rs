//! Typed requests and responses, one variant per task.

use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_skills::{GenerateOptions, Generation};
use serde::Serialize;

/// A request to an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum InferRequest {
    /// Sentence embeddings for each text.
    Embed {
        /// Texts, used exactly as given.
        texts: Vec<String>,
    },
    /// Continue a prompt with a causal language model.
    Generate {
        /// The prompt, used exactly as given.
        prompt: String,
        /// Decoding options.
        options: GenerateOptions,
        /// Receives the text piece by piece as it is generated.
        stream: Option<TextStream>,
    },
}

/// Where a streamed generation sends its text pieces.
#[derive(Debug, Clone)]
pub struct TextStream(tokio::sync::mpsc::UnboundedSender<String>);

impl TextStream {
    /// A stream and the receiver of its pieces.
    pub fn channel() -> (Self, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Sends one piece; a receiver that went away is not an error.
    pub fn send(&self, piece: &str) {
        let _ = self.0.send(piece.to_owned());
    }

    /// Resolves once the receiver is dropped (the client went away).
    pub async fn closed(&self) {
        self.0.closed().await;
    }
}

impl PartialEq for TextStream {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

impl InferRequest {
    /// An embedding request.
    pub fn embed<I, S>(texts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Embed {
            texts: texts.into_iter().map(Into::into).collect(),
        }
    }

    /// A generation request without streaming.
    pub fn generate(prompt: impl Into<String>, options: GenerateOptions) -> Self {
        Self::Generate {
            prompt: prompt.into(),
            options,
            stream: None,
        }
    }

    /// The task's name, for errors.
    pub fn task(&self) -> &'static str {
        match self {
            Self::Embed { .. } => "embedding",
            Self::Generate { .. } => "text generation",
        }
    }
}

/// An endpoint's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InferResponse {
    /// One vector per text, in request order.
    Embeddings {
        /// The model.
        model: String,
        /// The backend that ran.
        backend: BackendKind,
        /// The vectors.
        embeddings: Vec<Vec<f32>>,
        /// Tokens processed (after truncation, special tokens included).
        tokens: usize,
    },
    /// Generated text.
    Generation {
        /// The model.
        model: String,
        /// The backend that ran.
        backend: BackendKind,
        /// Ids, text, why it stopped, prompt length.
        #[serde(flatten)]
        generation: Generation,
    },
}
