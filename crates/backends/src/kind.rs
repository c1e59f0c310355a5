//! The names users give backends.

use crate::BackendError;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A backend as named on the command line (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Pick the best available, falling back down the chain.
    Auto,
    /// candle on the CPU.
    Cpu,
    /// candle on an NVIDIA GPU (feature `cuda`).
    Cuda,
    /// ONNX Runtime, CPU execution provider.
    Ort,
    /// ONNX Runtime with the OpenVINO execution provider.
    OpenVino,
    /// llama.cpp, for GGUF models (feature `llama-cpp`).
    LlamaCpp,
}

impl BackendKind {
    /// Every concrete (non-`auto`) backend.
    pub const CONCRETE: [BackendKind; 5] = [
        Self::Cpu,
        Self::Cuda,
        Self::Ort,
        Self::OpenVino,
        Self::LlamaCpp,
    ];

    /// The name used on the command line and in JSON answers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Ort => "ort",
            Self::OpenVino => "openvino",
            Self::LlamaCpp => "llamacpp",
        }
    }

    /// True for backends that run ONNX graphs rather than candle modules.
    pub fn needs_onnx_graph(self) -> bool {
        matches!(self, Self::Ort | Self::OpenVino)
    }

    /// True for backends that run GGUF files only.
    pub fn runs_gguf_only(self) -> bool {
        matches!(self, Self::LlamaCpp)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" | "candle" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "ort" | "onnx" | "onnxruntime" => Ok(Self::Ort),
            "openvino" | "ov" => Ok(Self::OpenVino),
            "llamacpp" | "llama.cpp" | "llama-cpp" => Ok(Self::LlamaCpp),
            _ => Err(BackendError::UnknownName(s.to_owned())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in BackendKind::CONCRETE.iter().chain([&BackendKind::Auto]) {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), *kind);
        }
        assert!("tpu".parse::<BackendKind>().is_err());
    }
}
