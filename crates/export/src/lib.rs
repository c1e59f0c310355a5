//! ONNX export and graph rewrites (docs/onnx-export.md): the graph format
//! (protobuf messages), the exporter from safetensors + config (no
//! PyTorch), and the version-gated graph rewrites `patch list` shows.

mod bert;
pub mod builder;
mod decoder_io;
mod error;
mod export;
mod gpt2;
mod layers;
mod llama;
pub mod model_io;
pub mod proto;
pub mod rewrites;
mod rope;
mod weights;

pub use bert::{BertConfig, SentencePooling};
pub use error::{OnnxError, StaticDimension};
pub use export::{
    export, export_model, spec, ExportOptions, ExportSummary, TensorSpec, EXPORTABLE,
};
pub use gpt2::Gpt2Config;
pub use llama::LlamaConfig;
