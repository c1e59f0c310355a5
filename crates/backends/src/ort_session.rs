//! An ONNX Runtime session with owned inputs and outputs, so skills need no
//! `ort` types: tensors go in as shapes + vectors, come out as f32 vectors,
//! and a value (a KV cache) can be fed back without a copy.

use crate::{BackendError, BackendKind};
use ort::session::{Session, SessionInputValue, SessionInputs};
use ort::value::{DynValue, Tensor, ValueType};
use std::borrow::Cow;
use std::sync::Mutex;

/// A graph input or output: its name and shape (-1 for dynamic dimensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtIo {
    /// The name in the graph.
    pub name: String,
    /// Declared dimensions; -1 where dynamic.
    pub shape: Vec<i64>,
}

/// A tensor produced by a run, kept in ONNX Runtime's memory.
#[derive(Debug)]
pub struct OrtValue(DynValue);

/// One input of a run.
#[derive(Debug)]
pub enum OrtInput {
    /// int64 tensor (ids, masks, positions).
    I64 {
        /// Dimensions.
        shape: Vec<usize>,
        /// Row-major values.
        data: Vec<i64>,
    },
    /// float32 tensor.
    F32 {
        /// Dimensions.
        shape: Vec<usize>,
        /// Row-major values.
        data: Vec<f32>,
    },
    /// An output of an earlier run.
    Value(OrtValue),
}

impl OrtInput {
    /// One sequence of token ids, `[1, n]`.
    pub fn token_ids(ids: &[u32]) -> Self {
        Self::I64 {
            shape: vec![1, ids.len()],
            data: ids.iter().map(|&t| i64::from(t)).collect(),
        }
    }

    /// An attention mask of `len` ones, `[1, len]` (one unpadded sequence).
    pub fn ones(len: usize) -> Self {
        Self::I64 {
            shape: vec![1, len],
            data: vec![1; len],
        }
    }
}

/// The outputs of one run, by name.
#[derive(Debug)]
pub struct OrtOutputs {
    kind: BackendKind,
    values: Vec<(String, DynValue)>,
}

impl OrtOutputs {
    fn missing(&self, name: &str) -> BackendError {
        BackendError::Run {
            kind: self.kind,
            detail: format!("the graph has no output '{name}'"),
        }
    }

    /// Removes output `name`, to feed it to a later run.
    pub fn take(&mut self, name: &str) -> Result<OrtValue, BackendError> {
        let i = self
            .values
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| self.missing(name))?;
        Ok(OrtValue(self.values.swap_remove(i).1))
    }

    /// Output `name` as f32: its shape and row-major values.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), BackendError> {
        let (_, value) = self
            .values
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| self.missing(name))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| BackendError::Run {
                kind: self.kind,
                detail: format!("output '{name}': {e}"),
            })?;
        let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
        Ok((shape, data.to_vec()))
    }
}

/// A loaded ONNX graph on one backend. Runs are serialised (ONNX Runtime
/// sessions take `&mut` in `ort`); each run uses the session's thread pool.
#[derive(Debug)]
pub struct OrtSession {
    session: Mutex<Session>,
    kind: BackendKind,
    inputs: Vec<OrtIo>,
    outputs: Vec<OrtIo>,
}

fn io(outlets: &[ort::value::Outlet]) -> Vec<OrtIo> {
    outlets
        .iter()
        .map(|o| OrtIo {
            name: o.name().to_owned(),
            shape: match o.dtype() {
                ValueType::Tensor { shape, .. } => shape.to_vec(),
                _ => Vec::new(),
            },
        })
        .collect()
}

impl OrtSession {
    pub(crate) fn new(session: Session, kind: BackendKind) -> Self {
        let inputs = io(session.inputs());
        let outputs = io(session.outputs());
        Self {
            session: Mutex::new(session),
            kind,
            inputs,
            outputs,
        }
    }

    /// The backend it runs on.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The graph's inputs.
    pub fn inputs(&self) -> &[OrtIo] {
        &self.inputs
    }

    /// The graph's outputs.
    pub fn outputs(&self) -> &[OrtIo] {
        &self.outputs
    }

    /// The input called `name`, if the graph has one.
    pub fn input(&self, name: &str) -> Option<&OrtIo> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// Runs the graph on `inputs` and returns every output.
    pub fn run(&self, inputs: Vec<(String, OrtInput)>) -> Result<OrtOutputs, BackendError> {
        let kind = self.kind;
        let failed = |detail: String| BackendError::Run { kind, detail };
        let mut feed: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (name, input) in inputs {
            let value: DynValue = match input {
                OrtInput::I64 { shape, data } => Tensor::from_array((shape, data))
                    .map_err(|e| failed(format!("input '{name}': {e}")))?
                    .into_dyn(),
                OrtInput::F32 { shape, data } => Tensor::from_array((shape, data))
                    .map_err(|e| failed(format!("input '{name}': {e}")))?
                    .into_dyn(),
                OrtInput::Value(OrtValue(value)) => value,
            };
            feed.push((Cow::Owned(name), SessionInputValue::Owned(value)));
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| failed("the session is unusable after an earlier failure".to_owned()))?;
        let outputs = session
            .run(SessionInputs::<0>::ValueMap(feed))
            .map_err(|e| failed(e.to_string()))?;
        let values = outputs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        Ok(OrtOutputs { kind, values })
    }
}
