//! Typed requests and responses, one variant per task.

use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_media::{Audio, RgbImage};
use ipfs_accelerate_skills::TranscribeOptions;
use ipfs_accelerate_skills::{GenerateOptions, Generation, Similarity, Transcription};
use serde::Serialize;

/// A request to an endpoint.
#[derive(Debug, Clone)]
pub enum InferRequest {
    /// Sentence embeddings for each text (a text-embedding model), or
    /// shared-space text embeddings (CLIP, CLAP).
    Embed {
        /// Texts, used exactly as given.
        texts: Vec<String>,
    },
    /// Shared-space embeddings of texts, images and recordings (CLIP: texts
    /// and images; CLAP: texts and audio).
    EmbedItems {
        /// The inputs, answered in order.
        items: Vec<EmbedInput>,
    },
    /// Continue a prompt with a causal language model (or answer it, T5).
    Generate {
        /// The prompt, used exactly as given.
        prompt: String,
        /// Decoding options.
        options: GenerateOptions,
        /// Receives the text piece by piece as it is generated.
        stream: Option<TextStream>,
    },
    /// Answer a conversation, rendered with the model's chat template
    /// (causal LMs; LLaVA / LLaVA-NeXT with one image).
    Chat {
        /// The conversation so far.
        messages: Vec<ChatMessage>,
        /// Decoding options.
        options: GenerateOptions,
        /// Receives the text piece by piece as it is generated.
        stream: Option<TextStream>,
    },
    /// Answer a prompt about an image, as the prompt is given (no chat
    /// template; LLaVA / LLaVA-NeXT). The prompt holds the image token once,
    /// or gets one in front.
    Caption {
        /// The image.
        image: RgbImage,
        /// The prompt, used exactly as given.
        prompt: String,
        /// Decoding options.
        options: GenerateOptions,
        /// Receives the text piece by piece as it is generated.
        stream: Option<TextStream>,
    },
    /// Transcribe one recording (Whisper, wav2vec2).
    Transcribe {
        /// The recording, any rate (resampled to the model's).
        audio: Audio,
        /// Decoding options.
        options: TranscribeOptions,
    },
    /// Score texts against one image (CLIP), recording (CLAP) or video
    /// (X-CLIP).
    Similarity {
        /// The texts, scored in order.
        texts: Vec<String>,
        /// What they are compared with.
        media: MediaInput,
    },
}

/// One input of [`InferRequest::EmbedItems`].
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// Through the text tower.
    Text(String),
    /// Through the vision tower (CLIP).
    Image(RgbImage),
    /// Through the audio tower (CLAP).
    Audio(Audio),
}

/// What [`InferRequest::Similarity`] compares texts with.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaInput {
    /// One image (CLIP).
    Image(RgbImage),
    /// One recording (CLAP).
    Audio(Audio),
    /// A video as its frames, in order (X-CLIP).
    Video(Vec<RgbImage>),
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ... as the template knows them.
    pub role: String,
    /// Its parts in order (a plain string is one text part).
    pub content: Vec<ChatPart>,
}

/// A part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatPart {
    /// Text.
    Text(String),
    /// An image (for LLaVA / LLaVA-NeXT).
    Image(RgbImage),
}

impl ChatMessage {
    /// A message with one text part.
    pub fn text(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: vec![ChatPart::Text(content.into())],
        }
    }
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

    /// A chat request without streaming.
    pub fn chat(messages: Vec<ChatMessage>, options: GenerateOptions) -> Self {
        Self::Chat {
            messages,
            options,
            stream: None,
        }
    }

    /// The task's name, for errors.
    pub fn task(&self) -> &'static str {
        match self {
            Self::Embed { .. } | Self::EmbedItems { .. } => "embedding",
            Self::Generate { .. } => "completion",
            Self::Chat { .. } => "chat completion",
            Self::Caption { .. } => "image-to-text",
            Self::Transcribe { .. } => "transcription",
            Self::Similarity { .. } => "similarity",
        }
    }

    /// The stream pieces go to, for the requests that generate text.
    pub(crate) fn stream(&self) -> Option<&TextStream> {
        match self {
            Self::Generate { stream, .. }
            | Self::Chat { stream, .. }
            | Self::Caption { stream, .. } => stream.as_ref(),
            _ => None,
        }
    }

    /// The generation's options, for the requests that generate text.
    pub(crate) fn generate_options(&self) -> Option<&GenerateOptions> {
        match self {
            Self::Generate { options, .. }
            | Self::Chat { options, .. }
            | Self::Caption { options, .. } => Some(options),
            _ => None,
        }
    }
}

/// An endpoint's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InferResponse {
    /// One vector per input, in request order.
    Embeddings {
        /// The model.
        model: String,
        /// The backend that ran.
        backend: BackendKind,
        /// The vectors.
        embeddings: Vec<Vec<f32>>,
        /// Tokens processed (after truncation, special tokens included;
        /// 0 for images and audio).
        tokens: usize,
    },
    /// Generated text (completion, chat, image-to-text; for image-to-text
    /// `prompt_tokens` counts the image's tokens too).
    Generation {
        /// The model.
        model: String,
        /// The backend that ran.
        backend: BackendKind,
        /// Ids, text, why it stopped, prompt length.
        #[serde(flatten)]
        generation: Generation,
    },
    /// A transcription.
    Transcription {
        /// The model.
        model: String,
        /// The backend that ran.
        backend: BackendKind,
        /// Text, ids, language.
        #[serde(flatten)]
        transcription: Transcription,
        /// Length of the recording in seconds.
        duration_s: f64,
    },
    /// Texts scored against media.
    Similarity {
        /// The model.
        model: String,
        /// The backend that ran.
        backend: BackendKind,
        /// Logits and probabilities, one per text.
        #[serde(flatten)]
        similarity: Similarity,
    },
}
