//! ONNX: the graph format (protobuf messages), the exporter from
//! safetensors + config, and graph rewrites.
