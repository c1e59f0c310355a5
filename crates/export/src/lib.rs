//! ONNX export and graph rewrites (docs/onnx-export.md): the graph format
//! (protobuf messages), the exporter from safetensors + config (no
//! PyTorch), and the version-gated graph rewrites `patch list` shows.

mod bert;
pub mod builder;
mod clap;
mod clip;
mod decoder_io;
mod error;
mod export;
mod export_cache;
pub mod external_data;
mod gpt2;
mod layers;
mod llama;
mod llava;
pub mod model_io;
mod opt;
pub mod proto;
pub mod rewrites;
mod rope;
mod seq2seq_io;
mod t5;
mod wav2vec2;
mod weights;
mod whisper;
mod xclip;

pub use bert::{BertConfig, SentencePooling};
pub use error::{OnnxError, StaticDimension};
pub use export::{
    export, export_model, graph_files, spec, ExportOptions, ExportSummary, ExportedModel,
    GraphSummary, TensorSpec, EXPORTABLE, EXPORTER_VERSION, SEQ2SEQ_GRAPHS, SINGLE_GRAPH,
};
pub use export_cache::{
    cached_export, exportable_graphs, exports_of, provenance, split_merged_decoder, CachedExport,
    Provenance, SourceFile, EXPORT_MANIFEST_ID, MADE_BY_EXPORTER, MADE_BY_SPLIT, PROVENANCE_FILE,
};
pub use gpt2::Gpt2Config;
pub use llama::LlamaConfig;
