//! Printing answers: JSON on stdout, or text for people.

use ipfs_accelerate::skills::{
    ImageCaptioner, SimilarityModel, SpeechRecognizer, Text2TextGenerator,
};
use ipfs_accelerate::{BackendKind, ResolvedFile, TextGenerator};
use serde::Serialize;
use std::io::Write;

/// The JSON answer of a command that runs one model: the model as given,
/// the backend that really ran it, what the skill returned (its fields
/// inline) and every file loaded.
#[derive(Serialize)]
pub struct ModelAnswer<'a, T> {
    pub model: String,
    pub backend: BackendKind,
    #[serde(flatten)]
    pub result: T,
    pub files: &'a [ResolvedFile],
}

impl<'a, T> ModelAnswer<'a, T> {
    /// `result` of `skill`, which loaded `model`.
    pub fn new(model: String, skill: &'a impl LoadedSkill, result: T) -> Self {
        Self {
            model,
            backend: skill.backend(),
            result,
            files: skill.files(),
        }
    }
}

/// What an answer reports of a loaded skill. The skills have these as
/// inherent methods; the trait lets [`ModelAnswer::new`] take any of them.
pub trait LoadedSkill {
    /// The backend that really runs the model.
    fn backend(&self) -> BackendKind;
    /// Every file loaded, with the layer that served it.
    fn files(&self) -> &[ResolvedFile];
}

macro_rules! loaded_skill {
    ($($skill:ty),*) => {$(
        impl LoadedSkill for $skill {
            fn backend(&self) -> BackendKind {
                <$skill>::backend(self)
            }
            fn files(&self) -> &[ResolvedFile] {
                <$skill>::files(self)
            }
        }
    )*};
}

loaded_skill!(
    TextGenerator,
    Text2TextGenerator,
    ImageCaptioner,
    SpeechRecognizer,
    SimilarityModel
);

/// Prints `value` as one JSON object on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints lines for people on stdout.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// The error and its causes on one line, without repeating a cause that the
/// outer message already contains.
pub fn one_line_error(err: &anyhow::Error) -> String {
    ipfs_accelerate::error_line(err.as_ref())
}
