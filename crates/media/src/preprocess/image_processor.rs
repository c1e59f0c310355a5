//! `CLIPImageProcessor` (and the processors that share its steps: LLaVA's,
//! X-CLIP's per frame): RGB, resize (shortest edge or fixed size) with
//! Pillow's filter, centre crop, rescale, normalise, channels first.

use super::pil_resize::{resize, Filter};
use crate::PreprocessError;
use image::RgbImage;
use serde::Deserialize;
use serde_json::Value;

/// The keys of `preprocessor_config.json` that matter here (defaults are
/// `CLIPImageProcessor`'s).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageProcessorConfig {
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default)]
    pub size: Option<Value>,
    #[serde(default = "bicubic")]
    pub resample: u64,
    #[serde(default = "yes")]
    pub do_center_crop: bool,
    #[serde(default)]
    pub crop_size: Option<Value>,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(default = "clip_mean")]
    pub image_mean: Vec<f32>,
    #[serde(default = "clip_std")]
    pub image_std: Vec<f32>,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u64 {
    3
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn clip_mean() -> Vec<f32> {
    vec![0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn clip_std() -> Vec<f32> {
    vec![0.268_629_54, 0.261_302_6, 0.275_777_1]
}

/// How to resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    ShortestEdge(u32),
    Exact { width: u32, height: u32 },
}

fn parse_size(value: &Value, what: &str) -> Result<Size, PreprocessError> {
    let get = |k: &str| value.get(k).and_then(Value::as_u64).map(|v| v as u32);
    if let Some(v) = value.as_u64() {
        return Ok(Size::ShortestEdge(v as u32));
    }
    if let Some(edge) = get("shortest_edge") {
        return Ok(Size::ShortestEdge(edge));
    }
    match (get("width"), get("height")) {
        (Some(width), Some(height)) => Ok(Size::Exact { width, height }),
        _ => Err(PreprocessError::Config(format!(
            "{what} {value} is neither {{shortest_edge}} nor {{height, width}}"
        ))),
    }
}

/// A ready image processor.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    resize: Option<(Size, Filter)>,
    crop: Option<(u32, u32)>,
    rescale: Option<f64>,
    normalize: Option<(Vec<f32>, Vec<f32>)>,
}

impl ImageProcessor {
    /// Checks the config.
    pub fn new(config: &ImageProcessorConfig) -> Result<Self, PreprocessError> {
        let resize = if config.do_resize {
            let size = parse_size(
                config.size.as_ref().ok_or_else(|| {
                    PreprocessError::Config("do_resize is set but size is missing".to_owned())
                })?,
                "size",
            )?;
            let filter = Filter::from_pil_code(config.resample).ok_or_else(|| {
                PreprocessError::Config(format!(
                    "resample {} is not nearest (0), bilinear (2) or bicubic (3)",
                    config.resample
                ))
            })?;
            Some((size, filter))
        } else {
            None
        };
        let crop = if config.do_center_crop {
            match parse_size(
                config.crop_size.as_ref().ok_or_else(|| {
                    PreprocessError::Config(
                        "do_center_crop is set but crop_size is missing".to_owned(),
                    )
                })?,
                "crop_size",
            )? {
                Size::Exact { width, height } => Some((width, height)),
                Size::ShortestEdge(edge) => Some((edge, edge)),
            }
        } else {
            None
        };
        if config.do_normalize && (config.image_mean.len() != 3 || config.image_std.len() != 3) {
            return Err(PreprocessError::Config(
                "image_mean and image_std must have 3 values (RGB)".to_owned(),
            ));
        }
        if config.do_normalize && config.image_std.contains(&0.0) {
            return Err(PreprocessError::Config("image_std holds a zero".to_owned()));
        }
        Ok(Self {
            resize,
            crop,
            rescale: config.do_rescale.then_some(config.rescale_factor),
            normalize: config
                .do_normalize
                .then(|| (config.image_mean.clone(), config.image_std.clone())),
        })
    }

    /// The output `(width, height)` for an input of this size.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if let Some(crop) = self.crop {
            return crop;
        }
        self.resized_size(width, height)
    }

    fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.resize {
            None => (width, height),
            Some((Size::Exact { width, height }, _)) => (width, height),
            Some((Size::ShortestEdge(edge), _)) => {
                // transformers: short side = edge, long side = int(edge * long / short).
                let (short, long) = (width.min(height), width.max(height));
                let new_long = (f64::from(edge) * f64::from(long) / f64::from(short)) as u32;
                if width <= height {
                    (edge, new_long)
                } else {
                    (new_long, edge)
                }
            }
        }
    }

    /// Resizes and crops, still 8-bit (LLaVA-NeXT tiles work on this).
    pub fn resize_and_crop(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        let image = match self.resize {
            Some((_, filter)) => {
                let (nw, nh) = self.resized_size(w, h);
                resize(image, nw.max(1), nh.max(1), filter)
            }
            None => image.clone(),
        };
        match self.crop {
            Some((cw, ch)) => center_crop(&image, cw, ch),
            None => image,
        }
    }

    /// `pixel_values` `[3, height, width]`, row-major, for one image.
    pub fn pixel_values(&self, image: &RgbImage) -> (Vec<f32>, u32, u32) {
        let image = self.resize_and_crop(image);
        let (w, h) = image.dimensions();
        (self.to_values(&image), w, h)
    }

    /// Rescale and normalise an 8-bit image into channels-first values.
    pub fn to_values(&self, image: &RgbImage) -> Vec<f32> {
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                let mut v = f32::from(pixel[c]);
                if let Some(scale) = self.rescale {
                    // transformers rescales in f64 and stores f32.
                    v = (f64::from(pixel[c]) * scale) as f32;
                }
                if let Some((mean, std)) = &self.normalize {
                    v = (v - mean[c]) / std[c];
                }
                out[c * plane + i] = v;
            }
        }
        out
    }
}

/// transformers' `center_crop`: offsets `(dim - crop) // 2`, zero padding
/// where the image is smaller than the crop.
pub fn center_crop(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let left = (i64::from(w) - i64::from(width)).div_euclid(2);
    let top = (i64::from(h) - i64::from(height)).div_euclid(2);
    RgbImage::from_fn(width, height, |x, y| {
        let (sx, sy) = (i64::from(x) + left, i64::from(y) + top);
        if sx >= 0 && sy >= 0 && sx < i64::from(w) && sy < i64::from(h) {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}
