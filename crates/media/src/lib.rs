//! Media, from the user's file to the model's input tensor data (no tensor
//! library here: plain `Vec<f32>`s and shapes).
//!
//! - decoding user media (WAV audio, PNG/JPEG images, folders of video
//!   frames) into samples and pixels, with limits that turn hostile or
//!   mistaken files into one-line errors instead of crashes or huge
//!   allocations; resampling;
//! - [`preprocess`]: feature extractors and image processors reproducing
//!   `transformers`' own, driven by `preprocessor_config.json`.

mod audio;
mod audio_stream;
mod compressed_audio;
pub mod contained;
mod image;
mod mp4_guard;
pub mod preprocess;
mod video;

pub use self::audio::{
    decode_audio, decode_wav, read_audio, read_wav, resample, Audio, MAX_AUDIO_SECONDS,
};
pub use self::audio_stream::{
    collect, stream_at, AudioFile, AudioSource, BlockSink, SampleSlice, StreamResampler,
};
pub use self::image::{decode_image, read_image, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS};
pub use self::video::{frame_paths, read_frames, MAX_VIDEO_FRAMES};
/// Decoded images are `image`'s RGB buffers.
pub use ::image::RgbImage;

use std::path::Path;

/// Why a media file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct MediaError {
    /// The file.
    pub path: std::path::PathBuf,
    /// Why, in one line.
    pub reason: String,
}

impl MediaError {
    pub(crate) fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            reason: one_line(&reason.into()),
        }
    }
}

/// Why a preprocessor could not be built or could not take an input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// `preprocessor_config.json` (or the model config it must fit) is
    /// unusable.
    #[error("{0}")]
    Config(String),
    /// The input cannot be processed (empty, too long, ...).
    #[error("{0}")]
    Input(String),
}

/// Error texts from libraries can span lines; answers are one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
