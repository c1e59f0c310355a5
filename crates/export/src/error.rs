//! Errors of the exporter and the graph rewrites.

use ipfs_accelerate_loader::LoadError;

/// What can go wrong exporting, reading, writing or rewriting an ONNX graph.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A model file could not be resolved or parsed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The architecture is not one the exporter builds.
    #[error("cannot export '{model}': {reason}")]
    Unsupported {
        /// The model as given.
        model: String,
        /// Why (names the architecture or config key).
        reason: String,
    },
    /// A weight is missing, misshapen or of a dtype we cannot read.
    #[error("weights of '{model}': {reason}")]
    Weights {
        /// The model as given.
        model: String,
        /// Which tensor and what is wrong.
        reason: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error("{path} is not a valid ONNX model: {reason}")]
    Decode {
        /// The file (or `<bytes>`).
        path: String,
        /// The protobuf error.
        reason: String,
    },
    /// A graph is not what a rewrite expects.
    #[error("rewrite {rewrite}: {reason}")]
    Rewrite {
        /// The rewrite's name.
        rewrite: String,
        /// What it found.
        reason: String,
    },
    /// `stop_if_static`: a dimension declared dynamic became static.
    #[error("{0}")]
    StaticDimension(Box<StaticDimension>),
}

impl OnnxError {
    /// [`OnnxError::Unsupported`] for `model`, the way every architecture's
    /// builder refuses a config it cannot export.
    pub(crate) fn unsupported(model: &str, reason: String) -> Self {
        Self::Unsupported {
            model: model.to_owned(),
            reason,
        }
    }
}

/// Where a dimension declared dynamic became static.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dimension '{param}' (axis {axis} of '{tensor}') became static ({value}) at node '{node}' ({op_type}){after}"
)]
pub struct StaticDimension {
    /// The node that produces the tensor (or `<graph input>`).
    pub node: String,
    /// Its op type.
    pub op_type: String,
    /// The tensor.
    pub tensor: String,
    /// The axis.
    pub axis: usize,
    /// The symbolic name it was declared with.
    pub param: String,
    /// The static size it now has.
    pub value: i64,
    /// `" after rewrite X"` when a rewrite did it.
    pub after: String,
}
