//! LLaVA-NeXT's any-resolution tiling (`LlavaNextImageProcessor`): pick the
//! grid resolution that keeps the most of the image, resize into it keeping
//! the aspect ratio, pad with black to the grid, cut tiles of the crop size,
//! and put the whole image squashed to the base size in front. Each of these
//! images then goes through the CLIP steps ([`ImageProcessor`]).

use super::image_processor::{ImageProcessor, ImageProcessorConfig};
use super::pil_resize::{resize, Filter};
use crate::PreprocessError;
use image::{imageops, RgbImage};
use serde::Deserialize;
use serde_json::Value;

/// The keys of `preprocessor_config.json` that tiling reads.
#[derive(Debug, Clone, Deserialize)]
pub struct AnyResConfig {
    /// `(height, width)` resolutions the grid may take.
    pub image_grid_pinpoints: Vec<[u32; 2]>,
    #[serde(flatten)]
    pub clip: ImageProcessorConfig,
}

/// A ready tiler.
#[derive(Debug, Clone)]
pub struct AnyResProcessor {
    pinpoints: Vec<(u32, u32)>,
    base: u32,
    tile: u32,
    filter: Filter,
    clip: ImageProcessor,
}

/// An image cut for LLaVA-NeXT.
#[derive(Debug, Clone)]
pub struct Tiles {
    /// `[tiles, 3, h, w]` channels-first values, the base image first.
    pub values: Vec<f32>,
    /// How many images `values` holds (1 + the grid tiles).
    pub count: usize,
    /// Side of each image in pixels.
    pub side: u32,
    /// The grid resolution chosen, `(height, width)`.
    pub grid: (u32, u32),
}

impl AnyResProcessor {
    /// Checks the config.
    pub fn new(config: &AnyResConfig) -> Result<Self, PreprocessError> {
        let clip = ImageProcessor::new(&config.clip)?;
        let size = |v: &Option<Value>, what: &str| -> Result<u32, PreprocessError> {
            let v = v
                .as_ref()
                .ok_or_else(|| PreprocessError::Config(format!("{what} is missing")))?;
            let get = |k: &str| v.get(k).and_then(Value::as_u64);
            let side = match (get("shortest_edge"), get("height"), get("width")) {
                (Some(edge), _, _) => edge,
                (None, Some(h), Some(w)) => h.min(w),
                _ => v.as_u64().ok_or_else(|| {
                    PreprocessError::Config(format!(
                        "{what} {v} has no shortest_edge or height/width"
                    ))
                })?,
            };
            u32::try_from(side)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| PreprocessError::Config(format!("{what} {v} is not a usable size")))
        };
        let base = size(&config.clip.size, "size")?;
        // transformers cuts tiles of crop_size["height"].
        let tile = match config.clip.crop_size.as_ref() {
            Some(v) => match v.get("height").and_then(Value::as_u64) {
                Some(h) => u32::try_from(h).ok().filter(|h| *h > 0),
                None => v.as_u64().and_then(|h| u32::try_from(h).ok()),
            }
            .ok_or_else(|| {
                PreprocessError::Config(format!("crop_size {v} has no usable height"))
            })?,
            None => base,
        };
        let filter = Filter::from_pil_code(config.clip.resample).ok_or_else(|| {
            PreprocessError::Config(format!(
                "resample {} is not supported",
                config.clip.resample
            ))
        })?;
        if config.image_grid_pinpoints.is_empty() {
            return Err(PreprocessError::Config(
                "image_grid_pinpoints is empty".to_owned(),
            ));
        }
        let mut pinpoints = Vec::with_capacity(config.image_grid_pinpoints.len());
        for &[h, w] in &config.image_grid_pinpoints {
            if h == 0 || w == 0 || h % tile != 0 || w % tile != 0 {
                return Err(PreprocessError::Config(format!(
                    "image_grid_pinpoints entry [{h}, {w}] is not a multiple of the {tile}-pixel tile"
                )));
            }
            pinpoints.push((h, w));
        }
        Ok(Self {
            pinpoints,
            base,
            tile,
            filter,
            clip,
        })
    }

    /// The grid pinpoints, `(height, width)`.
    pub fn pinpoints(&self) -> &[(u32, u32)] {
        &self.pinpoints
    }

    /// Tiles `image` as `LlavaNextImageProcessor.preprocess` does.
    pub fn tiles(&self, image: &RgbImage) -> Tiles {
        let (width, height) = image.dimensions();
        let grid = select_best_resolution((height, width), &self.pinpoints);
        let (new_h, new_w) = patch_output_size((height, width), grid);
        let resized = resize(image, new_w, new_h, self.filter);
        // Black padding, centred (extra pixel after), before rescaling.
        let mut padded = RgbImage::new(grid.1, grid.0);
        let (pad_x, pad_y) = ((grid.1 - new_w) / 2, (grid.0 - new_h) / 2);
        imageops::replace(&mut padded, &resized, i64::from(pad_x), i64::from(pad_y));
        let mut images = vec![resize(image, self.base, self.base, self.filter)];
        for y in (0..grid.0).step_by(self.tile as usize) {
            for x in (0..grid.1).step_by(self.tile as usize) {
                images.push(imageops::crop_imm(&padded, x, y, self.tile, self.tile).to_image());
            }
        }
        let mut values = Vec::new();
        let mut side = 0;
        for tile in &images {
            let (v, w, _) = self.clip.pixel_values(tile);
            side = w;
            values.extend(v);
        }
        Tiles {
            values,
            count: images.len(),
            side,
            grid,
        }
    }
}

/// transformers' `select_best_resolution`: the `(height, width)` keeping
/// the most pixels of `original` after an aspect-preserving downscale, then
/// the one wasting the fewest; the first such in list order.
pub fn select_best_resolution(original: (u32, u32), candidates: &[(u32, u32)]) -> (u32, u32) {
    let (oh, ow) = (f64::from(original.0), f64::from(original.1));
    let mut best = candidates[0];
    let (mut max_effective, mut min_wasted) = (0u64, u64::MAX);
    for &(h, w) in candidates {
        let scale = (f64::from(w) / ow).min(f64::from(h) / oh);
        let (dw, dh) = ((ow * scale) as u64, (oh * scale) as u64);
        let effective = (dw * dh).min(u64::from(original.0) * u64::from(original.1));
        let wasted = u64::from(w) * u64::from(h) - effective;
        if effective > max_effective || (effective == max_effective && wasted < min_wasted) {
            max_effective = effective;
            min_wasted = wasted;
            best = (h, w);
        }
    }
    best
}

/// transformers' `get_patch_output_size`: the aspect-preserving size that
/// fits `target`, `(height, width)`.
fn patch_output_size(original: (u32, u32), target: (u32, u32)) -> (u32, u32) {
    let (oh, ow) = (f64::from(original.0), f64::from(original.1));
    let scale_w = f64::from(target.1) / ow;
    let scale_h = f64::from(target.0) / oh;
    if scale_w < scale_h {
        (((oh * scale_w).ceil() as u32).min(target.0), target.1)
    } else {
        (target.0, ((ow * scale_h).ceil() as u32).min(target.1))
    }
}

/// transformers' `unpad_image` on a `(height, width)` feature grid: the
/// rows or columns `(start, len)` that hold the image rather than padding.
pub fn unpadded_span(
    original: (u32, u32),
    current: (usize, usize),
) -> ((usize, usize), (usize, usize)) {
    let (oh, ow) = (f64::from(original.0), f64::from(original.1));
    let (ch, cw) = current;
    // Python's int(round(x, 7)).
    let round7 = |x: f64| ((x * 1e7).round() / 1e7).floor() as usize;
    if ow / oh > cw as f64 / ch as f64 {
        let new_h = round7(oh * (cw as f64 / ow));
        let pad = ch.saturating_sub(new_h) / 2;
        ((pad, ch - 2 * pad), (0, cw))
    } else {
        let new_w = round7(ow * (ch as f64 / oh));
        let pad = cw.saturating_sub(new_w) / 2;
        ((0, ch), (pad, cw - 2 * pad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_resolution_prefers_kept_pixels_then_less_waste() {
        let grid = [(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)];
        // Wide images pick the wide grid, tall ones the tall grid.
        assert_eq!(select_best_resolution((300, 800), &grid), (336, 1008));
        assert_eq!(select_best_resolution((800, 300), &grid), (1008, 336));
        // A large square keeps most in 672x672.
        assert_eq!(select_best_resolution((1000, 1000), &grid), (672, 672));
    }

    #[test]
    fn unpadding_follows_the_aspect_ratio() {
        // 40x48 (h x w) in a 4x8 grid: width-limited, rows trimmed.
        assert_eq!(unpadded_span((40, 48), (8, 8)), ((1, 6), (0, 8)));
        assert_eq!(unpadded_span((48, 40), (8, 8)), ((0, 8), (1, 6)));
        assert_eq!(unpadded_span((40, 40), (4, 8)), ((0, 4), (2, 4)));
    }
}
