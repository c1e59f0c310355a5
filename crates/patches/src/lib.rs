//! Export-patch rewriting (docs/patches.md): scoped, version-gated patches
//! of checkpoints, configs, ONNX graphs and files, applied through guards
//! that undo them, with rewrites dumped as diffs; and the ONNX exporter that
//! builds graphs straight from safetensors (no PyTorch).

pub mod onnx;
