//! The feed-forward block of a transformer layer: `fc2(act(fc1(x)))`.

use super::activation::Activation;
use crate::layers::linear::{linear, Linear};
use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

/// Two projections around an activation, as most families' `*MLP` /
/// feed-forward modules (without dropout, which inference skips).
#[derive(Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    /// From the two projections.
    pub fn new(fc1: Linear, fc2: Linear, activation: Activation) -> Self {
        Self {
            fc1,
            fc2,
            activation,
        }
    }

    /// Biased `fc1` (`hidden` → `inner`) and `fc2` (back) under `vb`.
    pub fn load(
        vb: VarBuilder,
        hidden: usize,
        inner: usize,
        activation: Activation,
    ) -> Result<Self> {
        Self::load_named(vb, ("fc1", "fc2"), hidden, inner, activation)
    }

    /// As [`Self::load`], for checkpoints that name the two projections
    /// otherwise.
    pub fn load_named(
        vb: VarBuilder,
        (fc1, fc2): (&str, &str),
        hidden: usize,
        inner: usize,
        activation: Activation,
    ) -> Result<Self> {
        Ok(Self::new(
            linear(hidden, inner, vb.pp(fc1))?,
            linear(inner, hidden, vb.pp(fc2))?,
            activation,
        ))
    }

    /// `fc2(act(fc1(x)))`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2
            .forward(&self.activation.forward(&self.fc1.forward(x)?)?)
    }
}
