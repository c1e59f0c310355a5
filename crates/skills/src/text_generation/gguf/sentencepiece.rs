//! The `tokenizer.json` of a SentencePiece BPE vocabulary
//! (`tokenizer.ggml.model = llama`), as `transformers`' `LlamaConverter`
//! writes it (legacy mode): `▁` for spaces with one prepended, byte
//! fallback for pieces outside the vocabulary, merges derived from the
//! piece scores.

use super::metadata::Metadata;
use super::tokenizer::{added_tokens, post_processor, vocab_object, Vocabulary};
use crate::SkillError;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The tokenizer JSON for a SentencePiece vocabulary with scores.
pub(crate) fn tokenizer_json(
    meta: &Metadata<'_>,
    vocabulary: &Vocabulary<'_>,
) -> Result<Value, SkillError> {
    let scores = meta
        .floats("tokenizer.ggml.scores")?
        .ok_or_else(|| meta.malformed("a llama tokenizer needs 'tokenizer.ggml.scores'"))?;
    if scores.len() != vocabulary.tokens.len() {
        return Err(meta.malformed(format!(
            "'tokenizer.ggml.scores' has {} entries for {} tokens",
            scores.len(),
            vocabulary.tokens.len()
        )));
    }
    let unk_id = meta.u32("tokenizer.ggml.unknown_token_id")?.unwrap_or(0);
    let unk = vocabulary.token(Some(unk_id));
    let add_space_prefix = meta
        .bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let normalizer = if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]})
    } else {
        json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens(vocabulary),
        "normalizer": normalizer,
        "pre_tokenizer": null,
        "post_processor": post_processor(meta, vocabulary, true)?,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": unk,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": true,
            "byte_fallback": true,
            "ignore_merges": false,
            "vocab": vocab_object(vocabulary),
            "merges": merges(vocabulary, &scores),
        },
    }))
}

/// Every split of a piece into two pieces of the vocabulary is a merge,
/// ranked by the piece's score (highest first), then by longer left and
/// right halves, then in vocabulary order: `transformers`' `generate_merges`.
fn merges(vocabulary: &Vocabulary<'_>, scores: &[f64]) -> Vec<Value> {
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(vocabulary.tokens.len());
    for (id, token) in vocabulary.tokens.iter().enumerate() {
        ids.entry(token).or_insert(id);
    }
    struct Merge<'a> {
        score: f64,
        left: &'a str,
        right: &'a str,
        left_chars: usize,
        right_chars: usize,
    }
    let mut found: Vec<Merge<'_>> = Vec::new();
    for (id, piece) in vocabulary.tokens.iter().enumerate() {
        let mut local: Vec<(usize, usize, Merge<'_>)> = Vec::new();
        for (cut, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(cut);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                let merge = Merge {
                    score: scores[id],
                    left,
                    right,
                    left_chars: left.chars().count(),
                    right_chars: right.chars().count(),
                };
                local.push((l, r, merge));
            }
        }
        local.sort_by_key(|(l, r, _)| (*l, *r));
        found.extend(local.into_iter().map(|(_, _, merge)| merge));
    }
    // A stable sort, as Python's `sorted(..., reverse=True)`.
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.left_chars.cmp(&a.left_chars))
            .then(b.right_chars.cmp(&a.right_chars))
    });
    found
        .into_iter()
        .map(|m| json!([m.left, m.right]))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_scores_then_lengths_then_ids() {
        let vocabulary = Vocabulary {
            tokens: vec!["<unk>", "a", "b", "c", "ab", "bc", "abc"],
            types: vec![2, 1, 1, 1, 1, 1, 1],
            bos: None,
            eos: None,
        };
        let scores = [0.0, -1.0, -1.0, -1.0, -3.0, -2.0, -4.0];
        let merges = merges(&vocabulary, &scores);
        assert_eq!(
            merges,
            vec![
                json!(["b", "c"]),
                json!(["a", "b"]),
                json!(["ab", "c"]),
                json!(["a", "bc"]),
            ]
        );
    }
}
