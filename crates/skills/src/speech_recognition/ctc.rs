//! CTC greedy decoding with a `Wav2Vec2CTCTokenizer` vocabulary, as its
//! `decode` does in transformers 4.57 (the ASR pipeline calls it with
//! `skip_special_tokens=False`):
//!
//! 1. each id becomes its token: an added token (`added_tokens.json`,
//!    `added_tokens_decoder`) before `vocab.json`, and the unknown token for
//!    an id neither names; with `skip_special_tokens`, special ids (the
//!    blank's included) are dropped, then special strings but the blank's;
//! 2. runs of equal tokens collapse to one, blanks (`pad_token`, whatever
//!    its id) go, each word delimiter becomes `replace_word_delimiter_char`;
//! 3. the pieces join with nothing between them (no spaces around special
//!    tokens), the text is stripped of whitespace as Python strips it,
//!    lowercased with `do_lower_case`, and cleaned up
//!    (`clean_up_tokenization_spaces`: ` .` → `.`, ...) when the config says.
//!
//! Special tokens are `bos`/`eos`/`unk`/`sep`/`pad`/`cls`/`mask` and
//! `additional_special_tokens` from `tokenizer_config.json`, else
//! `special_tokens_map.json`; a key in neither takes transformers' default
//! (`<s>`, `</s>`, `<unk>`, `<pad>`), and `null` means none.
//! `fixtures/ctc` holds vocabularies of our own with transformers' answers.
//! [`CtcVocab::offsets`] gives `output_char_offsets` / `output_word_offsets`.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The character vocabulary and its special tokens.
#[derive(Debug, Clone)]
pub(super) struct CtcVocab {
    /// The token of each model output id (`None`: the unknown token).
    tokens: Vec<Option<String>>,
    /// The blank: `pad_token`, whatever its id.
    pad: String,
    /// What an id without a token decodes to (`unk_token`).
    unk: String,
    word_delimiter: String,
    replace_word_delimiter: String,
    /// Special token strings, and the ids whose token is one.
    specials: HashSet<String>,
    special_ids: HashSet<usize>,
    lower_case: bool,
    clean_up_spaces: bool,
}

/// The tokenizer files a CTC vocabulary is read from.
#[derive(Debug, Clone, Copy)]
pub(super) struct CtcFiles<'a> {
    /// `vocab.json`: token → id.
    pub vocab: &'a Value,
    /// `tokenizer_config.json`.
    pub tokenizer_config: Option<&'a Value>,
    /// `special_tokens_map.json`.
    pub special_tokens_map: Option<&'a Value>,
    /// `added_tokens.json`: token → id.
    pub added_tokens: Option<&'a Value>,
}

/// The tokenizer files cannot be a CTC vocabulary.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidVocab(String);

/// A token given as a string or as an `AddedToken` object.
fn token_text(value: &Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value.get("content").and_then(Value::as_str))
}

impl CtcFiles<'_> {
    /// A setting from `tokenizer_config.json`, else `special_tokens_map.json`.
    fn setting(&self, key: &str) -> Option<&Value> {
        self.tokenizer_config
            .and_then(|c| c.get(key))
            .or_else(|| self.special_tokens_map.and_then(|m| m.get(key)))
    }

    /// A special token: the files' value (`null`: none), else `default`.
    fn special(&self, key: &str, default: Option<&str>) -> Option<String> {
        match self.setting(key) {
            Some(value) => token_text(value).map(str::to_owned),
            None => default.map(str::to_owned),
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.tokenizer_config
            .and_then(|c| c.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

impl CtcVocab {
    /// Builds it from the tokenizer files; `vocab_size` is the model's
    /// number of outputs (ids the files name beyond it never occur).
    pub fn new(files: CtcFiles<'_>, vocab_size: usize) -> Result<Self, InvalidVocab> {
        let map = files
            .vocab
            .as_object()
            .ok_or_else(|| InvalidVocab("vocab.json is not an object of token -> id".to_owned()))?;
        if map.values().all(Value::is_object) && !map.is_empty() {
            return Err(InvalidVocab(
                "vocab.json holds one vocabulary per language (MMS style); pick one first"
                    .to_owned(),
            ));
        }
        let mut tokens: Vec<Option<String>> = vec![None; vocab_size];
        let mut place = |token: &str, id: usize| {
            if let Some(slot) = tokens.get_mut(id) {
                *slot = Some(token.to_owned());
            }
        };
        for (token, id) in map {
            let id = id.as_u64().ok_or_else(|| {
                InvalidVocab(format!("vocab.json: the id of '{token}' is not a number"))
            })?;
            place(token, id as usize);
        }
        // Added tokens take precedence over vocab.json, as in transformers.
        if let Some(added) = files.added_tokens.and_then(Value::as_object) {
            for (token, id) in added {
                if let Some(id) = id.as_u64() {
                    place(token, id as usize);
                }
            }
        }
        if let Some(added) = files
            .tokenizer_config
            .and_then(|c| c.get("added_tokens_decoder"))
            .and_then(Value::as_object)
        {
            for (id, token) in added {
                if let (Ok(id), Some(text)) = (id.parse::<usize>(), token_text(token)) {
                    place(text, id);
                }
            }
        }
        let pad = files
            .special("pad_token", Some("<pad>"))
            .ok_or_else(|| InvalidVocab("pad_token is null: CTC needs a blank".to_owned()))?;
        if !tokens.iter().flatten().any(|t| *t == pad) {
            return Err(InvalidVocab(format!(
                "the blank token '{pad}' (pad_token) is not in vocab.json or the added tokens"
            )));
        }
        let unk = files.special("unk_token", Some("<unk>"));
        let mut specials: HashSet<String> = [
            files.special("bos_token", Some("<s>")),
            files.special("eos_token", Some("</s>")),
            unk.clone(),
            files.special("sep_token", None),
            Some(pad.clone()),
            files.special("cls_token", None),
            files.special("mask_token", None),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(extra) = files
            .setting("additional_special_tokens")
            .and_then(Value::as_array)
        {
            specials.extend(extra.iter().filter_map(token_text).map(str::to_owned));
        }
        let ids: HashMap<&str, usize> = tokens
            .iter()
            .enumerate()
            .filter_map(|(id, t)| t.as_deref().map(|t| (t, id)))
            .collect();
        let mut special_ids: HashSet<usize> = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_ref().is_some_and(|t| specials.contains(t)))
            .map(|(id, _)| id)
            .collect();
        // A special token with no id is looked up as the unknown token's.
        let unk_id = unk.as_deref().and_then(|u| ids.get(u).copied());
        if specials.iter().any(|s| !ids.contains_key(s.as_str())) {
            special_ids.extend(unk_id);
        }
        let delimiter = match files.setting("word_delimiter_token") {
            Some(value) => token_text(value).unwrap_or("None").to_owned(),
            None => "|".to_owned(),
        };
        let replace = files
            .setting("replace_word_delimiter_char")
            .and_then(Value::as_str)
            .unwrap_or(" ")
            .to_owned();
        Ok(Self {
            tokens,
            pad,
            unk: unk.unwrap_or_default(),
            word_delimiter: delimiter,
            replace_word_delimiter: replace,
            specials,
            special_ids,
            lower_case: files.flag("do_lower_case"),
            clean_up_spaces: files.flag("clean_up_tokenization_spaces"),
        })
    }

    /// Step 1: the tokens of `ids`, special ones dropped when asked.
    fn tokens<'a>(&'a self, ids: &'a [u32], skip_special_tokens: bool) -> Vec<&'a str> {
        ids.iter()
            .map(|&id| id as usize)
            .filter(|id| !(skip_special_tokens && self.special_ids.contains(id)))
            .map(|id| {
                self.tokens
                    .get(id)
                    .and_then(Option::as_deref)
                    .unwrap_or(self.unk.as_str())
            })
            .filter(|t| !(skip_special_tokens && *t != self.pad && self.specials.contains(*t)))
            .collect()
    }

    /// The text of per-frame argmax ids (see the module's steps).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let mut out = String::new();
        for group in self.groups(ids, skip_special_tokens) {
            out.push_str(group.text);
        }
        // Python's str.strip(): whitespace, and the separators U+001C-U+001F.
        let mut text = out
            .trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
            .to_owned();
        if self.lower_case {
            text = text.to_lowercase();
        }
        if self.clean_up_spaces {
            text = clean_up_tokenization(&text);
        }
        text
    }

    /// Step 2: runs of equal tokens as groups over the kept tokens (blank
    /// groups dropped, delimiters replaced), with their token positions.
    fn groups<'a>(&'a self, ids: &'a [u32], skip_special_tokens: bool) -> Vec<Group<'a>> {
        let tokens = self.tokens(ids, skip_special_tokens);
        let mut groups: Vec<Group<'a>> = Vec::new();
        let mut start = 0;
        while start < tokens.len() {
            let token = tokens[start];
            let end = start + tokens[start..].iter().take_while(|t| **t == token).count();
            if token != self.pad {
                let text = if token == self.word_delimiter {
                    self.replace_word_delimiter.as_str()
                } else {
                    token
                };
                groups.push(Group { text, start, end });
            }
            start = end;
        }
        groups
    }

    /// transformers' `output_char_offsets` and `output_word_offsets`
    /// (character groups, words):
    /// per character group and per word, the positions (in the tokens kept
    /// after step 1: frames, when nothing is skipped) where it starts and
    /// ends. Characters are neither lower-cased nor cleaned up; special
    /// tokens are part of the words beside them.
    pub fn offsets(&self, ids: &[u32], skip_special_tokens: bool) -> (Vec<Offset>, Vec<Offset>) {
        let chars: Vec<Offset> = self
            .groups(ids, skip_special_tokens)
            .into_iter()
            .map(|g| Offset {
                text: g.text.to_owned(),
                start: g.start,
                end: g.end,
            })
            .collect();
        let mut words: Vec<Offset> = Vec::new();
        let mut in_word = false;
        for c in &chars {
            if c.text == self.replace_word_delimiter {
                in_word = false;
                continue;
            }
            match words.last_mut() {
                Some(word) if in_word => {
                    word.text.push_str(&c.text);
                    word.end = c.end;
                }
                _ => words.push(c.clone()),
            }
            in_word = true;
        }
        (chars, words)
    }
}

/// A run of equal tokens that shows in the text.
#[derive(Debug)]
struct Group<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

/// A character group or a word and the token positions it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Offset {
    /// Its text (a word delimiter shows as its replacement).
    pub text: String,
    /// First position.
    pub start: usize,
    /// One past the last position.
    pub end: usize,
}

/// transformers' `clean_up_tokenization`, in its order.
fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    #[test]
    fn collapses_repeats_and_drops_blanks() {
        let vocab = json!({"<pad>": 0, "</s>": 1, "|": 2, "A": 3, "B": 4});
        let config = json!({"eos_token": "</s>"});
        let files = CtcFiles {
            vocab: &vocab,
            tokenizer_config: Some(&config),
            special_tokens_map: None,
            added_tokens: None,
        };
        let v = CtcVocab::new(files, 5).unwrap();
        // A A _ A | B </s> B -> "AA B</s>B"; skipping specials first merges
        // the As around the blank and the Bs around </s>, as transformers does.
        let ids = [3, 3, 0, 3, 2, 4, 1, 4];
        assert_eq!(v.decode(&ids, false), "AA B</s>B");
        assert_eq!(v.decode(&ids, true), "A B");
        let no_blank = json!({"A": 0});
        let files = CtcFiles {
            vocab: &no_blank,
            ..files
        };
        assert!(CtcVocab::new(files, 1).is_err(), "no blank");
    }

    fn read(path: &std::path::Path) -> Option<Value> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }

    /// `fixtures/ctc`: five vocabularies of our own (the blank first, in the
    /// middle, or an added token; specials only in `added_tokens.json`;
    /// lower-casing and clean-up; no special keys at all; ids with no
    /// token), each with transformers 4.57.6's `decode` of 16-26 id
    /// sequences, with and without `skip_special_tokens`.
    #[test]
    fn text_equals_transformers_for_our_vocabularies() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ctc");
        let cases = read(&root.join("cases.json")).unwrap();
        let (mut checked, mut offsets_checked) = (0, 0);
        for vocabulary in cases["vocabularies"].as_array().unwrap() {
            let dir = root.join(vocabulary["dir"].as_str().unwrap());
            let (vocab, config, map, added) = (
                read(&dir.join("vocab.json")).unwrap(),
                read(&dir.join("tokenizer_config.json")),
                read(&dir.join("special_tokens_map.json")),
                read(&dir.join("added_tokens.json")),
            );
            let files = CtcFiles {
                vocab: &vocab,
                tokenizer_config: config.as_ref(),
                special_tokens_map: map.as_ref(),
                added_tokens: added.as_ref(),
            };
            let size = vocabulary["vocab_size"].as_u64().unwrap() as usize;
            let v = CtcVocab::new(files, size).unwrap();
            for case in vocabulary["cases"].as_array().unwrap() {
                let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
                let name = vocabulary["name"].as_str().unwrap();
                assert_eq!(v.decode(&ids, false), case["text"], "{name} {ids:?}");
                assert_eq!(
                    v.decode(&ids, true),
                    case["text_skip_special_tokens"],
                    "{name} {ids:?} skip"
                );
                if let Some(want) = case.get("char_offsets") {
                    let (chars, words) = v.offsets(&ids, false);
                    let as_json = |offsets: &[Offset], key: &str| -> Value {
                        offsets
                            .iter()
                            .map(|o| json!({key: o.text, "start_offset": o.start, "end_offset": o.end}))
                            .collect()
                    };
                    assert_eq!(as_json(&chars, "char"), *want, "{name} {ids:?} chars");
                    assert_eq!(
                        as_json(&words, "word"),
                        case["word_offsets"],
                        "{name} {ids:?} words"
                    );
                    offsets_checked += 1;
                }
                checked += 1;
            }
        }
        assert!(checked >= 90, "{checked} cases");
        assert!(offsets_checked >= 15, "{offsets_checked} offset cases");
    }
}
