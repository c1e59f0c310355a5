//! Stop strings and streaming: text goes out only once no stop string can
//! still start inside it, and a trailing U+FFFD (a character whose bytes are
//! split across tokens) waits for the next token.

/// Follows the decoded text of one generation.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    text: String,
    emitted: String,
    matched: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored.
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Self::default()
        }
    }

    /// Takes the whole decoded text so far; returns the new piece that is
    /// final, if any.
    pub fn advance(&mut self, text: &str) -> Option<String> {
        if self.matched {
            return None;
        }
        self.text = text.to_owned();
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            self.matched = true;
        }
        let safe = if self.matched {
            self.text.len()
        } else {
            self.safe_end()
        };
        self.emit_up_to(safe)
    }

    /// A stop string was found.
    pub fn matched(&self) -> bool {
        self.matched
    }

    /// The rest of the text once generation has ended.
    pub fn finish(&mut self) -> Option<String> {
        self.emit_up_to(self.text.len())
    }

    /// The final text (cut before the stop string when one matched).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn emit_up_to(&mut self, end: usize) -> Option<String> {
        // Decoding more tokens can rewrite a trailing U+FFFD; what went out
        // already is only extended, never taken back.
        if end <= self.emitted.len() || !self.text.starts_with(self.emitted.as_str()) {
            return None;
        }
        let piece = self.text[self.emitted.len()..end].to_owned();
        self.emitted.push_str(&piece);
        Some(piece)
    }

    /// The end of the text minus the longest suffix that could begin a stop
    /// string or is an incomplete character.
    fn safe_end(&self) -> usize {
        let text = self.text.as_str();
        let mut end = text.len();
        while text[..end].ends_with('\u{fffd}') {
            end -= '\u{fffd}'.len_utf8();
        }
        let held = text[..end]
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let suffix = &text[i..end];
                self.stops.iter().any(|s| s.starts_with(suffix))
            })
            .unwrap_or(end);
        held.min(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(stops: &[&str], steps: &[&str]) -> (Vec<String>, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut pieces = Vec::new();
        for text in steps {
            pieces.extend(m.advance(text));
            if m.matched() {
                break;
            }
        }
        pieces.extend(m.finish());
        (pieces, m.text().to_owned(), m.matched())
    }

    #[test]
    fn streams_without_stops() {
        let (pieces, text, matched) = stream(&[], &["He", "Hello", "Hello world"]);
        assert_eq!(pieces, ["He", "llo", " world"]);
        assert_eq!(text, "Hello world");
        assert!(!matched);
    }

    #[test]
    fn holds_back_a_possible_stop_and_cuts_at_it() {
        let (pieces, text, matched) = stream(&["\nUser:"], &["Hi", "Hi\nUs", "Hi\nUser: next"]);
        assert_eq!(pieces, ["Hi"]);
        assert_eq!(text, "Hi");
        assert!(matched);
    }

    #[test]
    fn a_held_prefix_that_does_not_complete_is_released() {
        let (pieces, text, _) = stream(&["\nUser:"], &["Hi\nUs", "Hi\nUsual"]);
        assert_eq!(pieces.concat(), "Hi\nUsual");
        assert_eq!(text, "Hi\nUsual");
    }

    #[test]
    fn split_characters_wait_for_their_bytes() {
        let (pieces, text, _) = stream(&[], &["a\u{fffd}", "aé"]);
        assert_eq!(pieces, ["a", "é"]);
        assert_eq!(text, "aé");
    }

    #[test]
    fn the_earliest_stop_wins() {
        let (_, text, matched) = stream(&["b", "c"], &["a c b"]);
        assert_eq!(text, "a ");
        assert!(matched);
    }
}
