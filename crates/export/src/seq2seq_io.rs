//! The inputs and outputs every exported encoder-decoder's decoder shares
//! (T5, Whisper), named as optimum names them: `input_ids`, then
//! `encoder_hidden_states` (first step) or
//! `past_key_values.{i}.{decoder,encoder}.{key,value}` (later steps) in;
//! `logits` and `present.{i}.decoder.*` (plus `present.{i}.encoder.*` on
//! the first step) out. See [`super::decoder_io`] for decoder-only models.

use super::builder::{Dim, GraphBuilder};
use super::decoder_io::kv_dims;
use super::layers::dim_scalar;
use super::proto::data_type;

/// Batch axis name.
pub const BATCH: &str = "batch_size";
/// Encoder positions.
pub const ENC_SEQ: &str = "encoder_sequence_length";
/// New decoder tokens.
pub const DEC_SEQ: &str = "decoder_sequence_length";
/// Cached decoder tokens.
pub const PAST: &str = "past_decoder_sequence_length";
/// Cached plus new decoder tokens.
pub const TOTAL: &str = "past_decoder_sequence_length + decoder_sequence_length";

/// The four cache tensors of one layer: self-attention key and value, then
/// cross-attention key and value.
pub type LayerCache = [String; 4];

/// A decoder graph's inputs, and what follows from them.
#[derive(Debug)]
pub struct Seq2SeqDecoderInputs {
    /// `[batch, new tokens]` int64.
    pub input_ids: String,
    /// `[batch, encoder positions]` int64, for decoders that take it (T5).
    pub encoder_attention_mask: Option<String>,
    /// The encoder output `[batch, positions, d]` (first step only).
    pub encoder_hidden_states: Option<String>,
    /// The cache per layer (later steps only).
    pub past: Vec<LayerCache>,
    /// Absolute positions of the new tokens `[new]` (int64, from the
    /// cached length).
    pub positions: String,
    /// The causal additive bias `[new, cached + new]`: 0 where a query may
    /// see a key, the float32 minimum elsewhere.
    pub causal: String,
}

/// Declares a decoder's inputs (the first step's when `with_past` is
/// false) and builds its positions and causal bias under `/decoder/mask`.
pub fn decoder_inputs(
    g: &mut GraphBuilder,
    (layers, heads, head_dim, d): (usize, usize, usize, usize),
    with_past: bool,
    encoder_mask: bool,
) -> Seq2SeqDecoderInputs {
    let input_ids = g.input(
        "input_ids",
        data_type::INT64,
        &[Dim::named(BATCH), Dim::named(DEC_SEQ)],
    );
    let encoder_attention_mask = encoder_mask.then(|| {
        g.input(
            "encoder_attention_mask",
            data_type::INT64,
            &[Dim::named(BATCH), Dim::named(ENC_SEQ)],
        )
    });
    let encoder_hidden_states = (!with_past).then(|| {
        g.input(
            "encoder_hidden_states",
            data_type::FLOAT,
            &[Dim::named(BATCH), Dim::named(ENC_SEQ), Dim::Fixed(d as i64)],
        )
    });
    let past: Vec<LayerCache> = if with_past {
        (0..layers)
            .map(|i| {
                let mut p = |part: &str, len: &str| {
                    g.input(
                        &format!("past_key_values.{i}.{part}"),
                        data_type::FLOAT,
                        &kv_dims(heads, head_dim, len),
                    )
                };
                [
                    p("decoder.key", PAST),
                    p("decoder.value", PAST),
                    p("encoder.key", ENC_SEQ),
                    p("encoder.value", ENC_SEQ),
                ]
            })
            .collect()
    } else {
        Vec::new()
    };
    g.set_scope("/decoder/mask");
    let q_len = dim_scalar(g, &input_ids, 1);
    let past_len = match past.first() {
        Some(p) => dim_scalar(g, &p[0], 2),
        None => g.int(0),
    };
    let total = g.op("Add", &[&past_len, &q_len], vec![]);
    let (zero, one) = (g.int(0), g.int(1));
    let positions = g.op("Range", &[&past_len, &total, &one], vec![]);
    let k_pos = g.op("Range", &[&zero, &total, &one], vec![]);
    let (ax0, ax1) = (g.ints(&[0]), g.ints(&[1]));
    let q_col = g.op("Unsqueeze", &[&positions, &ax1], vec![]);
    let k_row = g.op("Unsqueeze", &[&k_pos, &ax0], vec![]);
    let allowed = g.op("LessOrEqual", &[&k_row, &q_col], vec![]);
    let (open, closed) = (g.float(0.0), g.float(f32::MIN));
    let causal = g.op("Where", &[&allowed, &open, &closed], vec![]);
    Seq2SeqDecoderInputs {
        input_ids,
        encoder_attention_mask,
        encoder_hidden_states,
        past,
        positions,
        causal,
    }
}

/// Declares `logits` and the `present.*` outputs: the whole cache on the
/// first step, the grown self-attention part on later steps.
pub fn decoder_outputs(
    g: &mut GraphBuilder,
    (logits, vocab): (&str, usize),
    present: &[LayerCache],
    (heads, head_dim): (usize, usize),
    with_past: bool,
) {
    g.set_scope("");
    g.output(
        logits,
        "logits",
        data_type::FLOAT,
        &[
            Dim::named(BATCH),
            Dim::named(DEC_SEQ),
            Dim::Fixed(vocab as i64),
        ],
    );
    let self_len = if with_past { TOTAL } else { DEC_SEQ };
    for (i, [k, v, ck, cv]) in present.iter().enumerate() {
        let mut out = |value: &str, part: &str, len: &str| {
            g.output(
                value,
                &format!("present.{i}.{part}"),
                data_type::FLOAT,
                &kv_dims(heads, head_dim, len),
            );
        };
        out(k, "decoder.key", self_len);
        out(v, "decoder.value", self_len);
        if !with_past {
            out(ck, "encoder.key", ENC_SEQ);
            out(cv, "encoder.value", ENC_SEQ);
        }
    }
}
