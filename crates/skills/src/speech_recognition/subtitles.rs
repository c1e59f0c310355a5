//! Subtitles from a transcription: SubRip (`.srt`) and WebVTT (`.vtt`),
//! one cue per Whisper segment, or per word for a CTC model (whose
//! timestamps are words).
//!
//! Times are rounded to the millisecond, as OpenAI's reference writers do.
//! A cue's text is the segment's text with its surrounding spaces trimmed,
//! line breaks turned into spaces (a blank line would end the cue) and
//! `-->` written `->` (it would read as a timing line).

use super::Transcription;

/// One subtitle.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    /// Seconds.
    pub start: f64,
    /// Seconds.
    pub end: f64,
    /// The text, as [`cue_text`] writes it.
    pub text: String,
}

impl Transcription {
    /// The cues of this transcription: its segments, else its words; empty
    /// when it was made without timestamps.
    pub fn cues(&self) -> Vec<Cue> {
        if !self.segments.is_empty() {
            self.segments
                .iter()
                .map(|s| Cue {
                    start: s.start,
                    end: s.end,
                    text: cue_text(&s.text),
                })
                .collect()
        } else {
            self.words
                .iter()
                .map(|w| Cue {
                    start: w.start,
                    end: w.end,
                    text: cue_text(&w.word),
                })
                .collect()
        }
    }
}

/// A segment's text as a cue holds it (see the module comment).
pub fn cue_text(text: &str) -> String {
    let mut text = text.replace(['\r', '\n'], " ");
    // `--->` becomes `-->` after one pass: repeat until none is left.
    while text.contains("-->") {
        text = text.replace("-->", "->");
    }
    text.trim().to_owned()
}

/// `HH:MM:SS<separator>mmm`.
fn timestamp(seconds: f64, separator: char) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, millis) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}")
}

/// SubRip: numbered cues, `,` before the milliseconds.
pub fn srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, cue) in cues.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(cue.start, ','),
            timestamp(cue.end, ','),
            cue.text
        ));
    }
    out
}

/// WebVTT: the `WEBVTT` header, then cues with `.` before the milliseconds.
pub fn vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for cue in cues {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(cue.start, '.'),
            timestamp(cue.end, '.'),
            cue.text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_are_written_as_subrip_and_webvtt() {
        let cues = [
            Cue {
                start: 0.32,
                end: 11.22,
                text: cue_text(" she said ---> yes\n"),
            },
            Cue {
                start: 3725.001,
                end: 3726.5,
                text: String::new(),
            },
        ];
        assert_eq!(
            srt(&cues),
            "1\n00:00:00,320 --> 00:00:11,220\nshe said -> yes\n\n2\n01:02:05,001 --> 01:02:06,500\n\n\n"
        );
        assert_eq!(
            vtt(&cues),
            "WEBVTT\n\n00:00:00.320 --> 00:00:11.220\nshe said -> yes\n\n01:02:05.001 --> 01:02:06.500\n\n\n"
        );
    }
}
