//! `export onnx`: reads `config.json` and the safetensors weights through
//! the loader and writes `model.onnx` for the architectures we build.

use super::builder::EXPORT_OPSET;
use super::proto::{tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto};
use super::weights::Weights;
use super::{
    bert, clap, clip, gpt2, llama, llava, model_io, opt, t5, wav2vec2, whisper, xclip, OnnxError,
};
use ipfs_accelerate_loader::{FileKind, Loader, ModelRef, ResolvedFile};
use ipfs_accelerate_models::parse_config;
use ipfs_accelerate_models::pooling::Pooling;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Encoders: add the sentence-transformers pooling (and normalisation,
    /// when the model has a `Normalize` module) as output `sentence_embedding`.
    pub pooling: bool,
    /// The caller moves the large initializers into an external data file
    /// ([`crate::external_data`]; the export cache does): the 2 GiB limit
    /// of a protobuf with inline weights does not apply.
    pub external_data: bool,
}

/// One declared input or output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    /// Its name.
    pub name: String,
    /// `float32`, `int64`, ...
    pub dtype: String,
    /// Sizes; a dynamic axis is its name (a JSON string).
    pub shape: Vec<serde_json::Value>,
}

/// What `export onnx` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// The first (or only) `.onnx` file: `model.onnx`, or an
    /// encoder-decoder's `encoder_model.onnx`.
    pub path: PathBuf,
    /// Its inputs.
    pub inputs: Vec<TensorSpec>,
    /// Its outputs.
    pub outputs: Vec<TensorSpec>,
    /// Every graph file written, in order.
    pub graphs: Vec<GraphSummary>,
    /// The default-domain opset.
    pub opset: i64,
    /// The `model_type` exported.
    pub model_type: String,
    /// Model files read.
    pub files: Vec<ResolvedFile>,
}

/// The `model_type`s [`export_model`] builds.
pub const EXPORTABLE: [&str; 12] = [
    bert::MODEL_TYPE,
    gpt2::MODEL_TYPE,
    opt::MODEL_TYPE,
    llama::MODEL_TYPE,
    t5::MODEL_TYPE,
    whisper::MODEL_TYPE,
    wav2vec2::MODEL_TYPE,
    clip::MODEL_TYPE,
    clap::MODEL_TYPE,
    xclip::MODEL_TYPE,
    llava::MODEL_TYPE,
    llava::NEXT_MODEL_TYPE,
];

/// The version of the exporters' output. A graph cached by export on first
/// use is keyed by it (with the weights and config): bump it whenever any
/// exporter writes a different graph for the same checkpoint, so stale
/// cached graphs are never used.
pub const EXPORTER_VERSION: u32 = 4;

/// The graph files of a single-graph export (encoders, decoder-only
/// models), in optimum's layout under `onnx/`.
pub const SINGLE_GRAPH: &[&str] = &["model.onnx"];
/// The graph files of an encoder-decoder export, in optimum's layout
/// (`text2text-generation-with-past`): the encoder, the decoder's first
/// step, and its later steps with the KV cache.
pub const SEQ2SEQ_GRAPHS: &[&str] = &[
    "encoder_model.onnx",
    "decoder_model.onnx",
    "decoder_with_past_model.onnx",
];

/// The graph files `model_type` exports to (`None`: no exporter).
pub fn graph_files(model_type: &str) -> Option<&'static [&'static str]> {
    match model_type {
        t5::MODEL_TYPE | whisper::MODEL_TYPE => Some(SEQ2SEQ_GRAPHS),
        llava::MODEL_TYPE | llava::NEXT_MODEL_TYPE => Some(llava::GRAPHS),
        clap::MODEL_TYPE => Some(clap::GRAPHS),
        _ => EXPORTABLE.contains(&model_type).then_some(SINGLE_GRAPH),
    }
}

/// What [`export_model`] built.
#[derive(Debug)]
pub struct ExportedModel {
    /// Each graph with its file name ([`graph_files`], in that order).
    pub graphs: Vec<(&'static str, ModelProto)>,
    /// The `model_type` exported.
    pub model_type: String,
    /// Model files read.
    pub files: Vec<ResolvedFile>,
}

/// Builds the graphs of `model` in memory.
pub fn export_model(
    loader: &Loader,
    model: &ModelRef,
    options: &ExportOptions,
) -> Result<ExportedModel, OnnxError> {
    let name = model.to_string();
    let config_files = loader.from_pretrained(model, FileKind::Config)?;
    let config_file = &config_files[0];
    let raw: serde_json::Value = loader.read_json(model, config_file)?;
    let model_type = raw
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if options.pooling && model_type != bert::MODEL_TYPE {
        return Err(OnnxError::Unsupported {
            model: name,
            reason: "pooling applies to encoders (bert) only".to_owned(),
        });
    }
    if graph_files(&model_type).is_none() {
        return Err(OnnxError::Unsupported {
            model: name,
            reason: format!(
                "model_type '{model_type}' has no exporter (supported: {})",
                EXPORTABLE.join(", ")
            ),
        });
    }
    let malformed = |e: ipfs_accelerate_models::ModelError| {
        OnnxError::Load(ipfs_accelerate_loader::LoadError::Malformed {
            model: name.clone(),
            file: "config.json".to_owned(),
            reason: e.to_string(),
        })
    };
    let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
    let mut files: Vec<ResolvedFile> = config_files.clone();
    files.extend(weight_files.iter().cloned());
    tracing::info!(model = %name, model_type = %model_type, "exporting to ONNX");
    let weights = Weights::read(&name, &weight_files)?;
    let single = |graph| vec![(SINGLE_GRAPH[0], graph)];
    let graphs = match model_type.as_str() {
        bert::MODEL_TYPE => {
            let cfg: bert::BertConfig = parse_config(&raw).map_err(malformed)?;
            let pooling = if options.pooling {
                let (p, f) = sentence_pooling(loader, model)?;
                files.extend(f);
                Some(p)
            } else {
                None
            };
            single(bert::build(&name, &cfg, &weights, pooling.as_ref())?)
        }
        gpt2::MODEL_TYPE => {
            let cfg: gpt2::Gpt2Config = parse_config(&raw).map_err(malformed)?;
            single(gpt2::build(&name, &cfg, &weights)?)
        }
        opt::MODEL_TYPE => {
            let cfg: opt::OptConfig = parse_config(&raw).map_err(malformed)?;
            single(opt::build(&name, &cfg, &weights)?)
        }
        llama::MODEL_TYPE => {
            let cfg: llama::LlamaConfig = parse_config(&raw).map_err(malformed)?;
            single(llama::build(&name, &cfg, &weights)?)
        }
        t5::MODEL_TYPE => {
            let cfg: t5::T5Config = parse_config(&raw).map_err(malformed)?;
            SEQ2SEQ_GRAPHS
                .iter()
                .copied()
                .zip(t5::build(&name, &cfg, &weights)?)
                .collect()
        }
        whisper::MODEL_TYPE => {
            let cfg: whisper::WhisperConfig = parse_config(&raw).map_err(malformed)?;
            SEQ2SEQ_GRAPHS
                .iter()
                .copied()
                .zip(whisper::build(&name, &cfg, &weights)?)
                .collect()
        }
        llava::MODEL_TYPE | llava::NEXT_MODEL_TYPE => {
            let cfg = ipfs_accelerate_models::llava::LlavaConfig::parse(&raw).map_err(malformed)?;
            llava::GRAPHS
                .iter()
                .copied()
                .zip(llava::build(&name, &cfg, &weights)?)
                .collect()
        }
        clip::MODEL_TYPE => {
            let cfg: clip::ClipConfig = parse_config(&raw).map_err(malformed)?;
            single(clip::build(&name, &cfg, &weights)?)
        }
        clap::MODEL_TYPE => {
            let cfg: clap::ClapConfig = parse_config(&raw).map_err(malformed)?;
            clap::GRAPHS
                .iter()
                .copied()
                .zip(clap::build(&name, &cfg, &weights)?)
                .collect()
        }
        xclip::MODEL_TYPE => {
            let cfg: xclip::XClipConfig = parse_config(&raw).map_err(malformed)?;
            single(xclip::build(&name, &cfg, &weights)?)
        }
        wav2vec2::MODEL_TYPE => {
            let cfg: wav2vec2::Wav2Vec2Config = parse_config(&raw).map_err(malformed)?;
            single(wav2vec2::build(&name, &cfg, &weights)?)
        }
        other => {
            return Err(OnnxError::Unsupported {
                model: name,
                reason: format!("model_type '{other}' has no exporter"),
            })
        }
    };
    if !options.external_data {
        for (file, graph) in &graphs {
            check_size(&name, file, graph)?;
        }
    }
    Ok(ExportedModel {
        graphs,
        model_type,
        files,
    })
}

/// Protobuf messages stop at 2 GiB; larger graphs need external data,
/// which the exporter does not write yet.
fn check_size(model: &str, file: &str, graph: &ModelProto) -> Result<(), OnnxError> {
    let size = prost::Message::encoded_len(graph);
    if size > i32::MAX as usize {
        return Err(OnnxError::Unsupported {
            model: model.to_owned(),
            reason: format!("{file} is {size} bytes; ONNX files with inline weights stop at 2 GiB"),
        });
    }
    Ok(())
}

/// One graph file written by [`export`].
#[derive(Debug, Clone, Serialize)]
pub struct GraphSummary {
    /// The `.onnx` file.
    pub path: PathBuf,
    /// Graph inputs.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs.
    pub outputs: Vec<TensorSpec>,
}

impl GraphSummary {
    fn of(path: PathBuf, graph: &ModelProto) -> Self {
        let g = graph.graph.as_ref();
        Self {
            path,
            inputs: g
                .map(|g| g.input.iter().map(spec).collect())
                .unwrap_or_default(),
            outputs: g
                .map(|g| g.output.iter().map(spec).collect())
                .unwrap_or_default(),
        }
    }
}

/// Exports `model` into `out_dir` (`model.onnx`, or the encoder-decoder
/// files of [`SEQ2SEQ_GRAPHS`]).
pub fn export(
    loader: &Loader,
    model: &ModelRef,
    out_dir: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, OnnxError> {
    let exported = export_model(loader, model, options)?;
    let mut graphs = Vec::with_capacity(exported.graphs.len());
    for (file, graph) in &exported.graphs {
        let path = out_dir.join(file);
        model_io::write(graph, &path)?;
        graphs.push(GraphSummary::of(path, graph));
    }
    let first = graphs
        .first()
        .cloned()
        .ok_or_else(|| OnnxError::Unsupported {
            model: model.to_string(),
            reason: "the exporter built no graph".to_owned(),
        })?;
    Ok(ExportSummary {
        path: first.path,
        inputs: first.inputs,
        outputs: first.outputs,
        graphs,
        opset: EXPORT_OPSET,
        model_type: exported.model_type,
        files: exported.files,
    })
}

/// A declared value as JSON-friendly name, dtype and shape.
pub fn spec(v: &ValueInfoProto) -> TensorSpec {
    let (dtype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => (
            dtype_name(t.elem_type).to_owned(),
            t.shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(dimension::Value::DimValue(v)) => serde_json::Value::from(*v),
                            Some(dimension::Value::DimParam(p)) => {
                                serde_json::Value::from(p.as_str())
                            }
                            None => serde_json::Value::Null,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ("unknown".to_owned(), Vec::new()),
    };
    TensorSpec {
        name: v.name.clone(),
        dtype,
        shape,
    }
}

fn dtype_name(t: i32) -> &'static str {
    use super::proto::data_type as dt;
    match t {
        dt::FLOAT => "float32",
        dt::INT64 => "int64",
        dt::INT32 => "int32",
        dt::BOOL => "bool",
        dt::FLOAT16 => "float16",
        dt::BFLOAT16 => "bfloat16",
        dt::DOUBLE => "float64",
        dt::UINT8 => "uint8",
        dt::INT8 => "int8",
        dt::STRING => "string",
        _ => "other",
    }
}

/// The sentence-transformers files' pooling and normalisation; mean + L2
/// when the model has no `modules.json` (as the embed command does).
fn sentence_pooling(
    loader: &Loader,
    model: &ModelRef,
) -> Result<(bert::SentencePooling, Vec<ResolvedFile>), OnnxError> {
    let files = loader.sentence_transformers::<Pooling>(model)?;
    let pooling = bert::SentencePooling {
        pooling: files.pooling.unwrap_or_default(),
        normalize: files.normalize,
    };
    // `max_seq_length` is the tokenizer's business, not the graph's.
    let read = files
        .files
        .into_iter()
        .filter(|f| f.file != "sentence_bert_config.json")
        .collect();
    Ok((pooling, read))
}
