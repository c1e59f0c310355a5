//! A video given as a folder of frames (PNG or JPEG files, in file-name
//! order), as a user exports them with e.g. `ffmpeg -i v.mp4 f_%04d.png`.

use super::image::read_image;
use crate::MediaError;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// Folders with more frame files are refused: models sample a handful of
/// frames, and decoding thousands would only exhaust memory.
pub const MAX_VIDEO_FRAMES: usize = 10_000;

/// The frame files of `dir` (`.png`, `.jpg`, `.jpeg`, any case), sorted by
/// file name; other files are ignored.
pub fn frame_paths(dir: &Path) -> Result<Vec<PathBuf>, MediaError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| MediaError::new(dir, format!("not a readable folder of video frames: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| MediaError::new(dir, format!("cannot list: {e}")))?;
        let path = entry.path();
        let is_frame = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"));
        if is_frame && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(MediaError::new(
            dir,
            "the folder holds no video frames (.png, .jpg or .jpeg files)",
        ));
    }
    if paths.len() > MAX_VIDEO_FRAMES {
        return Err(MediaError::new(
            dir,
            format!(
                "the folder holds {} frames; at most {MAX_VIDEO_FRAMES} are accepted",
                paths.len()
            ),
        ));
    }
    paths.sort();
    Ok(paths)
}

/// Reads every frame of `dir` (see [`frame_paths`]) as RGB.
pub fn read_frames(dir: &Path) -> Result<Vec<RgbImage>, MediaError> {
    frame_paths(dir)?.iter().map(|p| read_image(p)).collect()
}
