//! CTC greedy decoding with a `Wav2Vec2CTCTokenizer` vocabulary
//! (`vocab.json` + `tokenizer_config.json`), as its `decode` does.

use serde_json::Value;
use std::collections::HashMap;

/// The character vocabulary and its special tokens.
#[derive(Debug, Clone)]
pub(super) struct CtcVocab {
    tokens: Vec<String>,
    /// The blank: `pad_token`, whatever its id.
    pad: String,
    word_delimiter: String,
    replace_word_delimiter: String,
    specials: Vec<String>,
    lower_case: bool,
}

/// `vocab.json` (with `tokenizer_config.json`) cannot be a CTC vocabulary.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidVocab(String);

impl CtcVocab {
    /// Builds it from the two files' JSON; `vocab_size` is the model's.
    pub fn new(
        vocab: &Value,
        tokenizer_config: Option<&Value>,
        vocab_size: usize,
    ) -> Result<Self, InvalidVocab> {
        let map = vocab
            .as_object()
            .ok_or_else(|| InvalidVocab("vocab.json is not an object of token -> id".to_owned()))?;
        if map.values().all(Value::is_object) && !map.is_empty() {
            return Err(InvalidVocab(
                "vocab.json holds one vocabulary per language (MMS style); pick one first"
                    .to_owned(),
            ));
        }
        let mut tokens = vec![String::new(); vocab_size];
        let mut seen = HashMap::new();
        for (token, id) in map {
            let id = id.as_u64().ok_or_else(|| {
                InvalidVocab(format!("vocab.json: the id of '{token}' is not a number"))
            })? as usize;
            if id >= vocab_size {
                return Err(InvalidVocab(format!(
                    "vocab.json: '{token}' has id {id}, beyond the model's {vocab_size} outputs"
                )));
            }
            tokens[id] = token.clone();
            seen.insert(id, ());
        }
        let text = |key: &str, default: &str| -> String {
            tokenizer_config
                .and_then(|c| c.get(key))
                .and_then(|v| {
                    v.as_str()
                        .or_else(|| v.get("content").and_then(Value::as_str))
                })
                .unwrap_or(default)
                .to_owned()
        };
        let pad = text("pad_token", "<pad>");
        if !map.contains_key(&pad) {
            return Err(InvalidVocab(format!(
                "the blank token '{pad}' (pad_token) is not in vocab.json"
            )));
        }
        let mut specials: Vec<String> = ["bos_token", "eos_token", "unk_token"]
            .iter()
            .map(|k| text(k, ""))
            .filter(|t| !t.is_empty())
            .collect();
        specials.push(pad.clone());
        Ok(Self {
            tokens,
            word_delimiter: text("word_delimiter_token", "|"),
            replace_word_delimiter: text("replace_word_delimiter_char", " "),
            lower_case: tokenizer_config
                .and_then(|c| c.get("do_lower_case"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            pad,
            specials,
        })
    }

    /// The text of per-frame argmax ids: repeats collapsed, blanks dropped,
    /// the word delimiter turned into a space. With `skip_special_tokens`,
    /// special tokens are dropped before repeats are collapsed (as
    /// transformers does).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let tokens = ids
            .iter()
            .map(|&id| self.tokens.get(id as usize).map_or("", String::as_str))
            .filter(|t| !(skip_special_tokens && self.specials.iter().any(|s| s == t)));
        let mut out = String::new();
        let mut previous: Option<&str> = None;
        for token in tokens {
            if previous == Some(token) {
                continue;
            }
            previous = Some(token);
            if token == self.pad {
                continue;
            }
            if token == self.word_delimiter {
                out.push_str(&self.replace_word_delimiter);
            } else {
                out.push_str(token);
            }
        }
        let out = out.trim().to_owned();
        if self.lower_case {
            out.to_lowercase()
        } else {
            out
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collapses_repeats_and_drops_blanks() {
        let vocab = json!({"<pad>": 0, "</s>": 1, "|": 2, "A": 3, "B": 4});
        let v = CtcVocab::new(&vocab, Some(&json!({"eos_token": "</s>"})), 5).unwrap();
        // A A _ A | B </s> B -> "AA B</s>B"; skipping specials first merges
        // the As around the blank and the Bs around </s>, as transformers does.
        let ids = [3, 3, 0, 3, 2, 4, 1, 4];
        assert_eq!(v.decode(&ids, false), "AA B</s>B");
        assert_eq!(v.decode(&ids, true), "A B");
        assert!(
            CtcVocab::new(&json!({"A": 0}), None, 1).is_err(),
            "no blank"
        );
        assert!(
            CtcVocab::new(&vocab, None, 4).is_err(),
            "id beyond the head"
        );
    }
}
