//! Turning decoded media into model inputs exactly as `transformers`'
//! feature extractors and image processors do, driven by the model's
//! `preprocessor_config.json`.

pub mod anyres;
pub mod clap_features;
pub mod image_processor;
pub mod log_mel;
pub mod pil_resize;
pub(crate) mod stft;
pub mod waveform;
