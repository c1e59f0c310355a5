//! Layers every family shares.

pub mod activation;
pub mod attention;
pub mod rope;
