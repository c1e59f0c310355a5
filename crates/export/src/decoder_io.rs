//! The inputs and outputs every exported decoder shares, named as optimum
//! names them: `input_ids`, `attention_mask`, `position_ids`,
//! `past_key_values.{i}.key/value` in, `logits` and `present.{i}.key/value`
//! out, with dynamic `batch_size`, `sequence_length` and
//! `past_sequence_length` axes.

use super::builder::{Dim, GraphBuilder};
use super::layers::{causal_bias, dim_scalar};
use super::proto::data_type;

/// Batch axis name.
pub const BATCH: &str = "batch_size";
/// New-token axis name.
pub const SEQ: &str = "sequence_length";
/// Cached-token axis name.
pub const PAST: &str = "past_sequence_length";
/// Past plus new tokens.
pub const TOTAL: &str = "past_sequence_length + sequence_length";

/// Names of the graph inputs of a decoder.
#[derive(Debug)]
pub struct DecoderInputs {
    /// `[batch, seq]` int64.
    pub input_ids: String,
    /// `[batch, past + seq]` int64.
    pub attention_mask: String,
    /// `[batch, seq]` int64.
    pub position_ids: String,
    /// `(key, value)` per layer, `[batch, kv_heads, past, head_dim]`.
    pub past: Vec<(String, String)>,
}

/// Declares the inputs.
pub fn inputs(g: &mut GraphBuilder, layers: usize, kv_heads: usize, d: usize) -> DecoderInputs {
    inputs_of(g, layers, kv_heads, d, None)
}

/// Declares the inputs: `input_ids`, or (`embeds: Some(hidden)`)
/// `inputs_embeds` `[batch, seq, hidden]` float32 in its place, for a
/// decoder whose embeddings are made outside the graph (LLaVA merges image
/// features into them). [`DecoderInputs::input_ids`] names whichever.
pub fn inputs_of(
    g: &mut GraphBuilder,
    layers: usize,
    kv_heads: usize,
    d: usize,
    embeds: Option<usize>,
) -> DecoderInputs {
    let dyn2 = [Dim::named(BATCH), Dim::named(SEQ)];
    let input_ids = match embeds {
        Some(hidden) => g.input(
            "inputs_embeds",
            data_type::FLOAT,
            &[
                Dim::named(BATCH),
                Dim::named(SEQ),
                Dim::Fixed(hidden as i64),
            ],
        ),
        None => g.input("input_ids", data_type::INT64, &dyn2),
    };
    let attention_mask = g.input(
        "attention_mask",
        data_type::INT64,
        &[Dim::named(BATCH), Dim::named(TOTAL)],
    );
    let position_ids = g.input("position_ids", data_type::INT64, &dyn2);
    let kv = kv_dims(kv_heads, d, PAST);
    let past = (0..layers)
        .map(|i| {
            (
                g.input(&format!("past_key_values.{i}.key"), data_type::FLOAT, &kv),
                g.input(&format!("past_key_values.{i}.value"), data_type::FLOAT, &kv),
            )
        })
        .collect();
    DecoderInputs {
        input_ids,
        attention_mask,
        position_ids,
        past,
    }
}

impl DecoderInputs {
    /// The causal attention bias of these inputs (see
    /// [`causal_bias`]), under the `/mask` scope: the past length is read
    /// from the first layer's cached keys (0 for a model without layers).
    pub fn causal_bias(&self, g: &mut GraphBuilder) -> String {
        g.set_scope("/mask");
        let seq = dim_scalar(g, &self.input_ids, 1);
        let past_len = match self.past.first() {
            Some((k, _)) => dim_scalar(g, k, 2),
            None => g.int(0),
        };
        causal_bias(g, &self.attention_mask, &past_len, &seq)
    }
}

/// The axes of one cache tensor `[batch, heads, len, head_dim]`.
pub(super) fn kv_dims(kv_heads: usize, d: usize, len: &str) -> [Dim; 4] {
    [
        Dim::named(BATCH),
        Dim::Fixed(kv_heads as i64),
        Dim::named(len),
        Dim::Fixed(d as i64),
    ]
}

/// Declares `logits` and the `present.*` outputs.
pub fn outputs(
    g: &mut GraphBuilder,
    logits: &str,
    vocab: usize,
    present: &[(String, String)],
    kv_heads: usize,
    d: usize,
) {
    g.set_scope("");
    g.output(
        logits,
        "logits",
        data_type::FLOAT,
        &[Dim::named(BATCH), Dim::named(SEQ), Dim::Fixed(vocab as i64)],
    );
    let kv = kv_dims(kv_heads, d, TOTAL);
    for (i, (k, v)) in present.iter().enumerate() {
        g.output(k, &format!("present.{i}.key"), data_type::FLOAT, &kv);
        g.output(v, &format!("present.{i}.value"), data_type::FLOAT, &kv);
    }
}
