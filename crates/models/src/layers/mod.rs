//! Layers every family shares.

pub mod activation;
pub mod attention;
pub mod encoder;
pub mod linear;
pub mod mlp;
pub mod rope;
