//! ipfs-accelerate: run Hugging Face models on CPU (candle or ONNX Runtime),
//! OpenVINO and CUDA, loading every model file through one storage
//! layer: a content-addressed local cache shared over IPFS.
//!
//! This facade re-exports the layers so a user can depend on one crate:
//!
//! ```no_run
//! use ipfs_accelerate::{BackendKind, Loader, ModelRef, TextEmbedder};
//!
//! let loader = Loader::from_env()?;
//! let model = ModelRef::parse("sentence-transformers/all-MiniLM-L6-v2")?;
//! let embedder = TextEmbedder::load(&loader, &model, BackendKind::Auto)?;
//! let vectors = embedder.embed(&["hello world"])?;
//! assert_eq!(vectors[0].len(), 384);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod accelerator;
mod error_line;
mod status;

pub use ipfs_accelerate_backends as backends;
pub use ipfs_accelerate_export as export;
pub use ipfs_accelerate_gating as gating;
pub use ipfs_accelerate_loader as loader;
pub use ipfs_accelerate_media as media;
pub use ipfs_accelerate_models as models;
pub use ipfs_accelerate_patches as patches;
pub use ipfs_accelerate_skills as skills;
pub use ipfs_accelerate_storage as storage;

pub use accelerator::{
    Accelerator, AcceleratorError, ChatMessage, ChatPart, EmbedInput, EndpointOptions,
    EndpointStatus, Histogram, HistogramSnapshot, InferRequest, InferResponse, MediaInput,
    TextStream,
};
pub use error_line::error_line;
pub use ipfs_accelerate_backends::{BackendInfo, BackendKind};
pub use ipfs_accelerate_gating::Gate;
pub use ipfs_accelerate_loader::{FileKind, LoadError, Loader, ModelRef, ResolvedFile};
pub use ipfs_accelerate_skills::{
    Cancellation, EmbedOptions, GenerateOptions, Generation, SamplingParams, Similarity,
    SkillError, StopReason, TextEmbedder, TextGenerator, TranscribeOptions, Transcription,
};
pub use ipfs_accelerate_storage::{Layer, Manifest, StorageError, Store};
pub use status::{status, CachedExportInfo, OnnxExportStatus, Status, StorageStatus};
