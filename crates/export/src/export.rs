//! `export onnx`: reads `config.json` and the safetensors weights through
//! the loader and writes `model.onnx` for the architectures we build.

use super::builder::EXPORT_OPSET;
use super::proto::{tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto};
use super::weights::Weights;
use super::{bert, gpt2, llama, model_io, OnnxError};
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
    /// The `.onnx` file.
    pub path: PathBuf,
    /// Graph inputs.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs.
    pub outputs: Vec<TensorSpec>,
    /// The default-domain opset.
    pub opset: i64,
    /// The `model_type` exported.
    pub model_type: String,
    /// Model files read.
    pub files: Vec<ResolvedFile>,
}

/// The `model_type`s [`export_model`] builds.
pub const EXPORTABLE: [&str; 3] = [bert::MODEL_TYPE, gpt2::MODEL_TYPE, llama::MODEL_TYPE];

/// Builds the graph of `model` in memory.
pub fn export_model(
    loader: &Loader,
    model: &ModelRef,
    options: &ExportOptions,
) -> Result<(ModelProto, String, Vec<ResolvedFile>), OnnxError> {
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
    let graph = match model_type.as_str() {
        bert::MODEL_TYPE => {
            let cfg: bert::BertConfig = parse_config(&raw).map_err(malformed)?;
            let pooling = if options.pooling {
                let (p, f) = sentence_pooling(loader, model)?;
                files.extend(f);
                Some(p)
            } else {
                None
            };
            bert::build(&name, &cfg, &weights, pooling.as_ref())?
        }
        gpt2::MODEL_TYPE => {
            let cfg: gpt2::Gpt2Config = parse_config(&raw).map_err(malformed)?;
            gpt2::build(&name, &cfg, &weights)?
        }
        llama::MODEL_TYPE => {
            let cfg: llama::LlamaConfig = parse_config(&raw).map_err(malformed)?;
            llama::build(&name, &cfg, &weights)?
        }
        other => {
            return Err(OnnxError::Unsupported {
                model: name,
                reason: format!(
                    "model_type '{other}' has no exporter (supported: {})",
                    EXPORTABLE.join(", ")
                ),
            })
        }
    };
    Ok((graph, model_type, files))
}

/// Exports `model` to `out_dir/model.onnx`.
pub fn export(
    loader: &Loader,
    model: &ModelRef,
    out_dir: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, OnnxError> {
    let (graph, model_type, files) = export_model(loader, model, options)?;
    // Protobuf messages stop at 2 GiB; larger models need external data,
    // which the exporter does not write yet.
    let size = prost::Message::encoded_len(&graph);
    if size > i32::MAX as usize {
        return Err(OnnxError::Unsupported {
            model: model.to_string(),
            reason: format!(
                "the graph is {size} bytes; ONNX files with inline weights stop at 2 GiB"
            ),
        });
    }
    let path = out_dir.join("model.onnx");
    model_io::write(&graph, &path)?;
    let g = graph.graph.as_ref();
    Ok(ExportSummary {
        path,
        inputs: g
            .map(|g| g.input.iter().map(spec).collect())
            .unwrap_or_default(),
        outputs: g
            .map(|g| g.output.iter().map(spec).collect())
            .unwrap_or_default(),
        opset: EXPORT_OPSET,
        model_type,
        files,
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
