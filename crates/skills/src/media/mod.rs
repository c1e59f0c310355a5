//! Decoding user media (WAV audio, PNG/JPEG images, folders of video
//! frames) into samples and pixels, with limits that turn hostile or
//! mistaken files into one-line errors instead of crashes or huge
//! allocations.

mod audio;
mod image;
mod video;

pub use self::audio::{read_wav, resample, Audio, MAX_AUDIO_SECONDS};
pub use self::image::{read_image, MAX_IMAGE_PIXELS};
pub use self::video::{frame_paths, read_frames, MAX_VIDEO_FRAMES};

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
            reason: crate::weights::one_line(&reason.into()),
        }
    }
}
