//! Typed requests and responses, one variant per task.

use ipfs_accelerate_backends::BackendKind;
use serde::Serialize;

/// A request to an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum InferRequest {
    /// Sentence embeddings for each text.
    Embed {
        /// Texts, used exactly as given.
        texts: Vec<String>,
    },
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

    /// The task's name, for errors.
    pub fn task(&self) -> &'static str {
        match self {
            Self::Embed { .. } => "embedding",
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
}
