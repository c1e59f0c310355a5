//! The comparison of one family's answer with its fixture's reference:
//! greedy ids / text exactly, values within a tolerance. One definition
//! for the library parity tests (`tests/tests/families.rs`, answers from the
//! library) and `cargo xtask matrix` (answers from the CLI on every
//! backend): both shape their answers as the CLI's `--json` does.

use crate::fixture::reference_array;
use serde_json::Value;

/// How a family is run and checked, by its skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `embed`: `embeddings` against `outputs.embeddings`.
    Embed,
    /// `generate`: greedy `token_ids`, `last_logits` at the prompt.
    Generate,
    /// `text2text`: greedy `token_ids`, the first decoder step's logits.
    Text2Text,
    /// `transcribe` with Whisper: `token_ids`, the logits at the prefix.
    Whisper,
    /// `transcribe` with a CTC model: `text`, every frame's logits.
    Ctc,
    /// `similarity`: one logit per text against `logits_per_<media>`.
    Similarity {
        /// `image`, `audio` or `video`.
        media: &'static str,
    },
    /// `caption`: greedy `token_ids`, the first step's logits.
    Caption,
}

impl Check {
    /// The check of a family as `status --json` (or the skills crate's
    /// `families()`) describes it; `None` for a skill with no check yet.
    pub fn for_family(skill: &str, media: Option<&str>, decoding: Option<&str>) -> Option<Self> {
        Some(match (skill, media, decoding) {
            ("text_embedding", ..) => Self::Embed,
            ("text_generation", ..) => Self::Generate,
            ("text2text", ..) => Self::Text2Text,
            ("speech_recognition", _, Some("ctc")) => Self::Ctc,
            ("speech_recognition", ..) => Self::Whisper,
            ("similarity", Some("image"), _) => Self::Similarity { media: "image" },
            ("similarity", Some("audio"), _) => Self::Similarity { media: "audio" },
            ("similarity", Some("video"), _) => Self::Similarity { media: "video" },
            ("image_to_text", ..) => Self::Caption,
            _ => return None,
        })
    }

    /// The fixture's media file (or folder) a similarity family compares
    /// texts with.
    pub fn media_input(media: &str) -> &'static str {
        match media {
            "image" => "input.png",
            "audio" => "input.wav",
            _ => "frames",
        }
    }
}

/// Floats of a (possibly nested) JSON list.
pub fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|v| match v {
                    Value::Array(_) => f32s(v),
                    _ => vec![v.as_f64().unwrap_or(f64::NAN) as f32],
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ids(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// A reference array's values, inline or from `reference.safetensors`.
fn array(fixture: &str, value: &Value) -> Vec<f32> {
    match value.get("data") {
        Some(data) => f32s(data),
        None => reference_array(fixture, value).1,
    }
}

/// Largest |Δ|; infinite when the lengths differ or a value is NaN.
fn max_abs_diff(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() || got.is_empty() {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .fold(
            0.0,
            |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        )
}

/// `(ids_or_text_exact, max_abs_diff)` of `answer` (shaped as the CLI's
/// `--json` answer) against `reference`, the `reference.json` of `fixture`.
pub fn parity(check: Check, answer: &Value, reference: &Value, fixture: &str) -> (bool, f64) {
    let r = reference;
    // The first row of a reference array, as long as the answer's values.
    let first_row = |got: &[f32], reference: &Value| {
        let want = array(fixture, reference);
        max_abs_diff(got, &want[..got.len().min(want.len())])
    };
    match check {
        Check::Embed => (
            true,
            max_abs_diff(
                &f32s(&answer["embeddings"]),
                &array(fixture, &r["outputs"]["embeddings"]),
            ),
        ),
        Check::Generate => (
            ids(&answer["token_ids"]) == ids(&r["prompt"]["token_ids"]),
            max_abs_diff(
                &f32s(&answer["last_logits"]),
                &array(fixture, &r["prompt"]["last_logits"]),
            ),
        ),
        Check::Text2Text => (
            ids(&answer["token_ids"])
                == r["generation"]["token_ids"]
                    .get(0)
                    .map(ids)
                    .unwrap_or_default(),
            first_row(
                &f32s(&answer["last_logits"]),
                &r["outputs"]["first_step_logits"],
            ),
        ),
        Check::Whisper => (
            ids(&answer["token_ids"]) == ids(&r["generation"]["token_ids"]),
            max_abs_diff(
                &f32s(&answer["outputs"]["prefix_logits"]["data"]),
                &array(fixture, &r["outputs"]["prefix_logits"]),
            ),
        ),
        Check::Ctc => (
            answer["text"] == r["outputs"]["text"],
            max_abs_diff(
                &f32s(&answer["outputs"]["logits"]["data"]),
                &array(fixture, &r["outputs"]["logits"]),
            ),
        ),
        Check::Similarity { media } => (
            true,
            first_row(
                &f32s(&answer["logits"]),
                &r["outputs"][format!("logits_per_{media}")],
            ),
        ),
        Check::Caption => (
            ids(&answer["token_ids"]) == ids(&r["generation"]["token_ids"]),
            max_abs_diff(
                &f32s(&answer["last_logits"]),
                &array(fixture, &r["outputs"]["last_logits"]),
            ),
        ),
    }
}
