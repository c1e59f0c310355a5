//! A `tokenizers::Tokenizer` built from GGUF metadata (`tokenizer.ggml.*`),
//! for GGUF files that come without a `tokenizer.json`.
//!
//! The tokenizer is written as the `tokenizer.json` that `transformers`
//! would save for the same vocabulary and then parsed, so it behaves exactly
//! as one loaded from a file:
//! - `gpt2`: byte-level BPE from `tokens` + `merges`; the pre-tokenizer
//!   follows `tokenizer.ggml.pre` (llama.cpp's names).
//! - `llama`: SentencePiece BPE from `tokens` + `scores` with byte
//!   fallback, merges derived from the scores as `transformers`' converter
//!   does.

use super::metadata::Metadata;
use super::sentencepiece;
use crate::load::weights::one_line;
use crate::SkillError;
use serde_json::{json, Map, Value};
use tokenizers::Tokenizer;

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
pub(crate) mod token_type {
    /// An ordinary piece.
    pub const NORMAL: i64 = 1;
    /// The unknown token.
    pub const UNKNOWN: i64 = 2;
    /// A special (control) token: `<s>`, `<|im_end|>`.
    pub const CONTROL: i64 = 3;
    /// An added, non-special token.
    pub const USER_DEFINED: i64 = 4;
}

/// The vocabulary part of the metadata every tokenizer model uses.
pub(crate) struct Vocabulary<'a> {
    pub(crate) tokens: Vec<&'a str>,
    pub(crate) types: Vec<i64>,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
}

impl Vocabulary<'_> {
    /// Token `id`'s text, if it is in the vocabulary.
    pub(crate) fn token(&self, id: Option<u32>) -> Option<&str> {
        id.and_then(|id| self.tokens.get(id as usize).copied())
    }
}

/// Builds the tokenizer that the metadata describes.
pub(crate) fn from_metadata(meta: &Metadata<'_>) -> Result<Tokenizer, SkillError> {
    let kind = meta.string("tokenizer.ggml.model")?.ok_or_else(|| {
        meta.malformed("no tokenizer.json beside it and no 'tokenizer.ggml.model' in its metadata")
    })?;
    let vocabulary = vocabulary(meta)?;
    let json = match kind {
        "gpt2" => byte_level(meta, &vocabulary)?,
        "llama" => sentencepiece::tokenizer_json(meta, &vocabulary)?,
        other => {
            return Err(SkillError::Unsupported {
                model: meta.model.to_owned(),
                found: format!("GGUF tokenizer model '{other}'"),
                supported: vec!["gpt2", "llama"],
            })
        }
    };
    let bytes = serde_json::to_vec(&json).map_err(|e| meta.malformed(e.to_string()))?;
    crate::load::tokenizer_from_bytes(&bytes).map_err(|e| {
        meta.malformed(format!(
            "cannot build a tokenizer from its metadata: {}",
            one_line(&e.to_string())
        ))
    })
}

/// The end-of-sequence ids: `eos`, `eot` and `eom` token ids when present.
pub(crate) fn eos_ids(meta: &Metadata<'_>) -> Result<Vec<u32>, SkillError> {
    let mut ids = Vec::new();
    for key in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ] {
        if let Some(id) = meta.u32(key)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

fn vocabulary<'a>(meta: &Metadata<'a>) -> Result<Vocabulary<'a>, SkillError> {
    let tokens = meta
        .strings("tokenizer.ggml.tokens")?
        .ok_or_else(|| meta.malformed("metadata has no 'tokenizer.ggml.tokens'"))?;
    let types = match meta.integers("tokenizer.ggml.token_type")? {
        Some(types) if types.len() == tokens.len() => types,
        Some(types) => {
            return Err(meta.malformed(format!(
                "'tokenizer.ggml.token_type' has {} entries for {} tokens",
                types.len(),
                tokens.len()
            )))
        }
        None => vec![token_type::NORMAL; tokens.len()],
    };
    let in_range = |key: &str| -> Result<Option<u32>, SkillError> {
        match meta.u32(key)? {
            Some(id) if id as usize >= tokens.len() => Err(meta.malformed(format!(
                "'{key}' = {id} is outside the vocabulary of {} tokens",
                tokens.len()
            ))),
            other => Ok(other),
        }
    };
    Ok(Vocabulary {
        bos: in_range("tokenizer.ggml.bos_token_id")?,
        eos: in_range("tokenizer.ggml.eos_token_id")?,
        tokens,
        types,
    })
}

/// `model.vocab`: token → id, the first id winning for a duplicated text
/// (a JSON object keeps one).
pub(crate) fn vocab_object(vocabulary: &Vocabulary<'_>) -> Map<String, Value> {
    let mut vocab = Map::with_capacity(vocabulary.tokens.len());
    let mut duplicates = 0usize;
    for (id, token) in vocabulary.tokens.iter().enumerate() {
        if vocab.contains_key(*token) {
            duplicates += 1;
            continue;
        }
        vocab.insert((*token).to_owned(), json!(id));
    }
    if duplicates > 0 {
        tracing::warn!(
            duplicates,
            "GGUF vocabulary repeats token texts; the first id of each is kept"
        );
    }
    vocab
}

/// `added_tokens`: control and unknown tokens as special tokens,
/// user-defined ones as plain added tokens, matched before the model runs.
pub(crate) fn added_tokens(vocabulary: &Vocabulary<'_>) -> Vec<Value> {
    vocabulary
        .tokens
        .iter()
        .zip(&vocabulary.types)
        .enumerate()
        .filter_map(|(id, (token, kind))| {
            let special = match *kind {
                token_type::CONTROL | token_type::UNKNOWN => true,
                token_type::USER_DEFINED => false,
                _ => return None,
            };
            Some(json!({
                "id": id,
                "content": token,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": special,
            }))
        })
        .collect()
}

/// BOS/EOS around each sequence as `add_bos_token`/`add_eos_token` ask;
/// `None` when neither is added.
pub(crate) fn post_processor(
    meta: &Metadata<'_>,
    vocabulary: &Vocabulary<'_>,
    add_bos_default: bool,
) -> Result<Value, SkillError> {
    let add_bos = meta
        .bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(add_bos_default);
    let add_eos = meta.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let bos = vocabulary.token(vocabulary.bos).filter(|_| add_bos);
    let eos = vocabulary.token(vocabulary.eos).filter(|_| add_eos);
    if bos.is_none() && eos.is_none() {
        return Ok(Value::Null);
    }
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut special_tokens = Map::new();
    let special =
        |token: &str, type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    for (part, type_id) in [("A", 0), ("B", 1)] {
        let target = if part == "A" { &mut single } else { &mut pair };
        if let (Some(token), Some(id)) = (bos, vocabulary.bos) {
            target.push(special(token, type_id));
            special_tokens.insert(
                token.to_owned(),
                json!({"id": token, "ids": [id], "tokens": [token]}),
            );
        }
        target.push(sequence(part, type_id));
        if let (Some(token), Some(id)) = (eos, vocabulary.eos) {
            target.push(special(token, type_id));
            special_tokens.insert(
                token.to_owned(),
                json!({"id": token, "ids": [id], "tokens": [token]}),
            );
        }
    }
    let pair: Vec<Value> = single.iter().cloned().chain(pair).collect();
    Ok(json!({
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": special_tokens,
    }))
}

/// Llama 3's and Qwen2's split patterns (from their tokenizer.json files).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The byte-level BPE `tokenizer.json` (`tokenizer.ggml.model = gpt2`).
fn byte_level(meta: &Metadata<'_>, vocabulary: &Vocabulary<'_>) -> Result<Value, SkillError> {
    let merges = meta
        .strings("tokenizer.ggml.merges")?
        .ok_or_else(|| meta.malformed("a gpt2 tokenizer needs 'tokenizer.ggml.merges'"))?;
    // Byte-level pieces never hold a plain space, so it separates the pair.
    let merges = merges
        .iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(left, right)| json!([left, right]))
                .ok_or_else(|| meta.malformed(format!("merge '{merge}' is not two pieces")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let add_prefix_space = meta
        .bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(false);
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    let pre = meta.string("tokenizer.ggml.pre")?;
    // (normalizer, pre-tokenizer, ignore_merges) as the models' own
    // tokenizer.json files have them.
    let (normalizer, pre_tokenizer, ignore_merges) = match pre.unwrap_or("default") {
        "default" | "gpt-2" | "gpt2" => (Value::Null, byte_level(true), false),
        "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" | "exaone" | "minerva" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]}),
            false,
        ),
        "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe" | "dbrx" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(false)]}),
            true,
        ),
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(false)]}),
            false,
        ),
        other => {
            return Err(SkillError::Unsupported {
                model: meta.model.to_owned(),
                found: format!("GGUF pre-tokenizer '{other}'"),
                supported: vec![
                    "default",
                    "gpt-2",
                    "smollm",
                    "starcoder",
                    "refact",
                    "codeshell",
                    "command-r",
                    "exaone",
                    "minerva",
                    "llama3",
                    "llama-bpe",
                    "smaug-bpe",
                    "dbrx",
                    "qwen2",
                    "deepseek-r1-qwen",
                ],
            })
        }
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens(vocabulary),
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor(meta, vocabulary, false)?,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": ignore_merges,
            "vocab": vocab_object(vocabulary),
            "merges": merges,
        },
    }))
}
