//! Answers checked against references: arrays, similarity scores, greedy
//! ids. Tolerances are the callers'; these only say where and by how much
//! a value is off.

use crate::{assert_close, at, f32_list, id_list, Array, Fixture};
use serde_json::Value;

/// Asserts an answer's `{shape, data}` has `want`'s shape and its values
/// within `tol`; returns the largest difference.
pub fn assert_array_close(key: &str, got: &Value, want: &Array, tol: f32) -> f32 {
    let got = Array::from_json(got);
    assert_eq!(got.shape, want.shape, "{key}: shape");
    assert_close(key, &got.data, &want.data, tol)
}

/// Asserts `answer` at `path` (e.g. `["outputs", "logits"]`) against the
/// reference array of `fixture` at the same path, within `tol`; returns the
/// largest difference.
pub fn assert_like_reference(
    key: &str,
    fixture: &Fixture,
    answer: &Value,
    path: &[&str],
    tol: f32,
) -> f32 {
    let want = fixture.array_at(path);
    let key = format!("{key} {}", path.join("."));
    assert_array_close(&key, at(answer, path), &want, tol)
}

/// Asserts a `similarity` answer's `logits` (within 1e-4) and `probs`
/// (within 1e-5); returns both differences.
pub fn assert_scores(key: &str, answer: &Value, logits: &[f32], probs: &[f32]) -> (f32, f32) {
    (
        assert_close(
            &format!("{key}: logits"),
            &f32_list(&answer["logits"]),
            logits,
            1e-4,
        ),
        assert_close(
            &format!("{key}: probs"),
            &f32_list(&answer["probs"]),
            probs,
            1e-5,
        ),
    )
}

/// Asserts a `similarity --return-inputs --return-embeddings` answer on
/// `fixture`'s inputs against its reference: `preprocessed.<input>`,
/// `outputs.text_embeds` and `outputs.<media>_embeds` within 1e-4, and the
/// scores against the first rows of `outputs.logits_per_<media>` and
/// `outputs.probs` ([`assert_scores`]). Returns the five differences in
/// that order.
pub fn assert_similarity_reference(
    key: &str,
    fixture: &Fixture,
    answer: &Value,
    input: &str,
    media: &str,
) -> [f32; 5] {
    let embeds = format!("{media}_embeds");
    let [input, text, media_embeds] = [
        ["preprocessed", input],
        ["outputs", "text_embeds"],
        ["outputs", embeds.as_str()],
    ]
    .map(|path| assert_like_reference(key, fixture, answer, &path, 1e-4));
    let logits = fixture.array_at(&["outputs", &format!("logits_per_{media}")]);
    let probs = fixture.array_at(&["outputs", "probs"]);
    let (logits, probs) = assert_scores(key, answer, &logits.rows()[0], &probs.rows()[0]);
    [input, text, media_embeds, logits, probs]
}

/// `ids` up to and including the first `eos`: batched references pad the
/// rows that ended early; we stop at EOS.
pub fn through_eos(mut ids: Vec<u32>, eos: u32) -> Vec<u32> {
    if let Some(end) = ids.iter().position(|&t| t == eos) {
        ids.truncate(end + 1);
    }
    ids
}

/// Asserts a greedy `text2text --return-logits` answer for text `i` of a
/// T5 reference: the first decoder step's logits against `first_logits`
/// (within 1e-4), the ids (through EOS) and the text of
/// `generation.token_ids[i]` and `generation.texts[i]`.
pub fn assert_t5_answer(
    key: &str,
    answer: &Value,
    first_logits: &[f32],
    generation: &Value,
    i: usize,
) {
    assert_close(
        &format!("{key}: first-step logits"),
        &f32_list(&answer["last_logits"]),
        first_logits,
        1e-4,
    );
    let eos = generation["eos_token_id"].as_u64().expect("eos_token_id") as u32;
    let want = through_eos(id_list(&generation["token_ids"][i]), eos);
    assert_eq!(id_list(&answer["token_ids"]), want, "{key}: token_ids");
    assert_eq!(answer["text"], generation["texts"][i], "{key}: text");
}

/// Asserts a `transcribe --return-inputs --return-logits` answer of a
/// wav2vec2 model against its reference: `preprocessed.input_values` and
/// `outputs.logits` within 1e-4, the frame ids (`outputs.argmax_ids`) and
/// the CTC text (`outputs.text`).
pub fn assert_wav2vec2_reference(key: &str, fixture: &Fixture, answer: &Value) {
    assert_like_reference(
        key,
        fixture,
        answer,
        &["preprocessed", "input_values"],
        1e-4,
    );
    assert_like_reference(key, fixture, answer, &["outputs", "logits"], 1e-4);
    assert_eq!(
        id_list(&answer["frame_ids"]),
        id_list(&fixture["outputs"]["argmax_ids"]),
        "{key}: frame ids"
    );
    // The ASR pipeline's CTC text: blanks dropped, other specials kept.
    assert_eq!(answer["text"], fixture["outputs"]["text"], "{key}: text");
}
