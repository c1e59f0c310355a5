//! Session settings for the ONNX Runtime backends, read from the
//! environment: thread counts and OpenVINO's inference precision.

use std::fmt;

/// Threads inside one operator (ONNX Runtime's intra-op pool; default: one
/// per physical core).
pub const THREADS_ENV: &str = "IPFS_ACCELERATE_ORT_THREADS";
/// Threads running independent operators at once (inter-op pool; default 1,
/// sequential execution, which is fastest for transformer graphs).
pub const INTER_THREADS_ENV: &str = "IPFS_ACCELERATE_ORT_INTER_THREADS";
/// OpenVINO's `INFERENCE_PRECISION_HINT`: `f32` (default, results match
/// PyTorch's), `bf16` or `f16` (faster on CPUs that have them, less exact).
pub const OPENVINO_PRECISION_ENV: &str = "IPFS_ACCELERATE_OPENVINO_PRECISION";

/// A session setting in the environment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtOptionsError {
    /// A thread count that is not a positive number.
    #[error("{name} must be a positive number of threads, got '{value}'")]
    Threads {
        /// The environment variable.
        name: &'static str,
        /// What it holds.
        value: String,
    },
    /// An OpenVINO precision other than f32, bf16 or f16.
    #[error("{OPENVINO_PRECISION_ENV} must be f32, bf16 or f16, got '{value}'")]
    Precision {
        /// What the variable holds.
        value: String,
    },
}

/// How ONNX Runtime sessions are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrtOptions {
    /// Intra-op threads; `None` leaves ONNX Runtime's default.
    pub intra_threads: Option<usize>,
    /// Inter-op threads; `None` or 1 runs operators one after another.
    pub inter_threads: Option<usize>,
}

impl OrtOptions {
    /// Reads [`THREADS_ENV`] and [`INTER_THREADS_ENV`].
    pub fn from_env() -> Result<Self, OrtOptionsError> {
        Ok(Self {
            intra_threads: threads(THREADS_ENV, std::env::var(THREADS_ENV).ok().as_deref())?,
            inter_threads: threads(
                INTER_THREADS_ENV,
                std::env::var(INTER_THREADS_ENV).ok().as_deref(),
            )?,
        })
    }
}

impl fmt::Display for OrtOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.intra_threads {
            Some(n) => write!(f, "{n} intra-op threads")?,
            None => f.write_str("default intra-op threads")?,
        }
        match self.inter_threads {
            Some(n) if n > 1 => write!(f, ", {n} inter-op threads"),
            _ => Ok(()),
        }
    }
}

fn threads(name: &'static str, value: Option<&str>) -> Result<Option<usize>, OrtOptionsError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(OrtOptionsError::Threads {
                name,
                value: v.to_owned(),
            }),
        },
    }
}

/// OpenVINO's inference precision on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Full single precision: what the references are checked against.
    #[default]
    F32,
    /// bfloat16 where the CPU has it (OpenVINO's own default there).
    Bf16,
    /// Half precision.
    F16,
}

impl Precision {
    /// Reads [`OPENVINO_PRECISION_ENV`].
    pub fn from_env() -> Result<Self, OrtOptionsError> {
        Self::parse(std::env::var(OPENVINO_PRECISION_ENV).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Self, OrtOptionsError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("f32") | Some("fp32") => Ok(Self::F32),
            Some("bf16") => Ok(Self::Bf16),
            Some("f16") | Some("fp16") => Ok(Self::F16),
            Some(other) => Err(OrtOptionsError::Precision {
                value: other.to_owned(),
            }),
        }
    }

    /// The value of OpenVINO's `INFERENCE_PRECISION_HINT`.
    pub fn hint(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts() {
        assert_eq!(threads("X", None).unwrap(), None);
        assert_eq!(threads("X", Some(" 4 ")).unwrap(), Some(4));
        assert!(threads("X", Some("0"))
            .unwrap_err()
            .to_string()
            .contains("positive"));
        assert!(threads("X", Some("many")).is_err());
    }

    #[test]
    fn precisions() {
        assert_eq!(Precision::parse(None).unwrap(), Precision::F32);
        assert_eq!(Precision::parse(Some("BF16")).unwrap().hint(), "bf16");
        assert_eq!(Precision::parse(Some("fp16")).unwrap(), Precision::F16);
        assert!(Precision::parse(Some("int8")).is_err());
    }
}
