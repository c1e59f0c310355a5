//! Pillow's resampling of 8-bit images (`Image.resize`), reproduced
//! exactly: separable convolution, horizontal pass first, coefficients
//! normalised per output pixel and quantised to 22-bit fixed point, each
//! pass rounded and clamped to `u8`. transformers' slow image processors
//! resize with Pillow, so any other resampler is off by a few levels.

use image::RgbImage;

/// Pillow's resampling filters that image processors name (`resample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Resampling.NEAREST` (0).
    Nearest,
    /// `Resampling.BILINEAR` (2): triangle, support 1.
    Bilinear,
    /// `Resampling.BICUBIC` (3): Keys cubic with a = -0.5, support 2.
    Bicubic,
}

impl Filter {
    /// From Pillow's integer code, as `preprocessor_config.json` stores it.
    pub fn from_pil_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Nearest),
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Self::Nearest => 0.0,
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Nearest => 0.0,
            Self::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index and fixed-point weights.
struct Coefficients {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` of Pillow's Resample.c.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let raw: Vec<f64> = (0..count)
            .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) / filterscale))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                if w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        starts.push(xmin);
        weights.push(fixed);
    }
    Coefficients { starts, weights }
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like `PIL.Image.resize((width, height), filter)` of Pillow 13
/// (the version the fixtures were made with): horizontal pass first, unless
/// the height shrinks by more than twice as many pixels as the width does
/// (then vertical first, as Pillow does since 11 to save work; the order
/// changes the rounding).
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = image.dimensions();
    if (in_w, in_h) == (width, height) {
        return image.clone();
    }
    if filter == Filter::Nearest {
        return nearest(image, width, height);
    }
    let (in_w, in_h) = (in_w as usize, in_h as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let shrink_y = in_h as i64 - out_h as i64;
    let shrink_x = in_w as i64 - out_w as i64;
    let horizontal_first = !(shrink_y > 0 && shrink_y > shrink_x * 2);
    let mut pixels = image.as_raw().clone();
    let (mut w, mut h) = (in_w, in_h);
    if horizontal_first {
        if out_w != w {
            pixels = horizontal_pass(&pixels, w, h, out_w, &coefficients(w, out_w, filter));
            w = out_w;
        }
        if out_h != h {
            pixels = vertical_pass(&pixels, w, out_h, &coefficients(h, out_h, filter));
        }
    } else {
        if out_h != h {
            pixels = vertical_pass(&pixels, w, out_h, &coefficients(h, out_h, filter));
            h = out_h;
        }
        if out_w != w {
            pixels = horizontal_pass(&pixels, w, h, out_w, &coefficients(w, out_w, filter));
        }
    }
    RgbImage::from_raw(width, height, pixels).unwrap_or_else(|| RgbImage::new(width, height))
}

/// Resamples each of the `h` rows of a `w`-wide RGB image to `out_w`.
fn horizontal_pass(src: &[u8], w: usize, h: usize, out_w: usize, k: &Coefficients) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; h * out_w * 3];
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        for (x, (start, weights)) in k.starts.iter().zip(&k.weights).enumerate() {
            for c in 0..3 {
                let mut acc = half;
                for (i, &wt) in weights.iter().enumerate() {
                    acc += i64::from(row[(start + i) * 3 + c]) * i64::from(wt);
                }
                out[(y * out_w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Resamples each column of a `w`-wide RGB image to `out_h` rows.
fn vertical_pass(src: &[u8], w: usize, out_h: usize, k: &Coefficients) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; out_h * w * 3];
    for (y, (start, weights)) in k.starts.iter().zip(&k.weights).enumerate() {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = half;
                for (i, &wt) in weights.iter().enumerate() {
                    acc += i64::from(src[((start + i) * w + x) * 3 + c]) * i64::from(wt);
                }
                out[(y * w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Pillow's nearest neighbour: source pixel at `floor((x + 0.5) * scale)`.
fn nearest(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = image.dimensions();
    let sx = f64::from(in_w) / f64::from(width);
    let sy = f64::from(in_h) / f64::from(height);
    RgbImage::from_fn(width, height, |x, y| {
        let ix = (((f64::from(x) + 0.5) * sx) as u32).min(in_w - 1);
        let iy = (((f64::from(y) + 0.5) * sy) as u32).min(in_h - 1);
        *image.get_pixel(ix, iy)
    })
}
