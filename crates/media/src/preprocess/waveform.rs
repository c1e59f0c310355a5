//! `Wav2Vec2FeatureExtractor`: the raw waveform, optionally normalised to
//! zero mean and unit variance over the whole clip.

use serde::Deserialize;

/// The keys of `preprocessor_config.json` that matter here.
#[derive(Debug, Clone, Deserialize)]
pub struct WaveformConfig {
    /// Rate the model expects; input is resampled to it.
    #[serde(default = "default_rate")]
    pub sampling_rate: u32,
    /// `(x - mean) / sqrt(var + 1e-7)` when true.
    #[serde(default = "default_true")]
    pub do_normalize: bool,
}

fn default_rate() -> u32 {
    16_000
}

fn default_true() -> bool {
    true
}

/// `input_values` for one clip.
pub fn input_values(config: &WaveformConfig, samples: &[f32]) -> Vec<f32> {
    if !config.do_normalize || samples.is_empty() {
        return samples.to_vec();
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = samples
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    let scale = 1.0 / (var + 1e-7).sqrt();
    samples
        .iter()
        .map(|&x| ((f64::from(x) - mean) * scale) as f32)
        .collect()
}
