//! Text–media similarity with dual encoders: CLIP (images), CLAP (audio),
//! X-CLIP (video). The answer is transformers' `logits_per_image` /
//! `logits_per_audio` / `logits_per_video` row (one logit per text) and its
//! softmax. CLIP also runs on ONNX Runtime / OpenVINO when the model ships
//! `onnx/model.onnx` (one graph: texts padded to a batch, with their mask).
//!
//! Each model family is one file with a `load_*` function here and one arm
//! in [`SimilarityModel::score`].

mod embed;
mod onnx_clap;
mod onnx_clip;

pub use embed::EmbedItem;

use crate::array::Array;
use crate::families::Task;
use crate::load::backend_chain::load_on_chain_with_onnx;
use crate::load::onnx_graph::{graph_set, no_graphs, onnx_graph, open_session};
use crate::load::weights::{malformed, var_builder};
use crate::load::{model_error, skill_api, Loaded, ModelFiles};
use crate::{SkillError, SkillKind};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::FileKind;
use ipfs_accelerate_media::preprocess::clap_features::{ClapFeatureConfig, ClapFeatureExtractor};
use ipfs_accelerate_media::preprocess::image_processor::{ImageProcessor, ImageProcessorConfig};
use ipfs_accelerate_media::{resample, Audio};
use ipfs_accelerate_models::{clap, clip, xclip, ModelError};
use onnx_clap::{AudioInput, OnnxClap, CLAP_GRAPHS};
use onnx_clip::{MediaKind, OnnxClip, TextBatch};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tokenizers::{Encoding, Tokenizer};

/// What the texts are compared with.
#[derive(Debug, Clone, Copy)]
pub enum Media<'a> {
    /// One RGB image.
    Image(&'a RgbImage),
    /// One recording, mono, at any sample rate.
    Audio(&'a Audio),
    /// A video as its frames, in order.
    Video(&'a [RgbImage]),
}

impl Media<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Image(_) => "an image (--image)",
            Self::Audio(_) => "audio (--audio)",
            Self::Video(_) => "a video (--video)",
        }
    }
}

/// What a request asks for besides the logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimilarityOptions {
    /// Add the preprocessed media (`pixel_values`).
    pub return_inputs: bool,
    /// Add the normalised embeddings (`text_embeds`, `image_embeds`).
    pub return_embeddings: bool,
}

/// Scores of texts against one media input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similarity {
    /// One logit per text (`logits_per_image` row).
    pub logits: Vec<f32>,
    /// Their softmax.
    pub probs: Vec<f32>,
    /// Preprocessed inputs, when asked.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub preprocessed: BTreeMap<String, Array>,
    /// Embeddings, when asked.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Array>,
}

#[derive(Debug)]
enum Model {
    Clip {
        model: Box<clip::Clip>,
        processor: ImageProcessor,
    },
    /// CLIP as one ONNX graph.
    ClipOnnx {
        model: OnnxClip,
        processor: ImageProcessor,
        /// Tokens per text at most (`max_position_embeddings`).
        max_positions: usize,
        /// The id texts are padded with.
        pad_id: u32,
        /// The vision tower's square input side.
        image_side: usize,
    },
    Clap {
        model: Box<clap::Clap>,
        extractor: ClapFeatureExtractor,
    },
    /// CLAP as two ONNX graphs.
    ClapOnnx {
        model: Box<OnnxClap>,
        extractor: ClapFeatureExtractor,
        /// Tokens per text at most.
        max_tokens: usize,
        /// The id texts are padded with.
        pad_id: u32,
    },
    XClip {
        model: Box<xclip::XClip>,
        processor: ImageProcessor,
    },
    /// X-CLIP as one ONNX graph.
    XClipOnnx {
        model: OnnxClip,
        processor: ImageProcessor,
        /// Tokens per text at most (`max_position_embeddings`).
        max_positions: usize,
        /// The id texts are padded with.
        pad_id: u32,
        /// Frames per video and their square side.
        frames: (usize, usize),
    },
}

impl Model {
    /// The media this model compares texts with, as [`Media::name`] says it.
    fn takes(&self) -> &'static str {
        match self {
            Self::Clip { .. } | Self::ClipOnnx { .. } => "an image (--image)",
            Self::Clap { .. } | Self::ClapOnnx { .. } => "audio (--audio)",
            Self::XClip { .. } | Self::XClipOnnx { .. } => "a video (--video)",
        }
    }
}

/// One family's raw answer, before it becomes a [`Similarity`].
#[derive(Debug)]
struct Scored {
    /// One logit per text.
    logits: Tensor,
    /// The preprocessed media, with transformers' input name.
    input: (&'static str, Tensor),
    /// Normalised text embeddings.
    text_embeds: Tensor,
    /// Normalised media embeddings, with transformers' output name.
    media_embeds: (&'static str, Tensor),
}

/// A loaded dual encoder with its tokenizer and media processor.
#[derive(Debug)]
pub struct SimilarityModel {
    loaded: Loaded,
    model: Model,
    tokenizer: Tokenizer,
    device: Device,
}

/// Reads `preprocessor_config.json` as an image processor.
pub(crate) fn load_image_processor(
    files: &mut ModelFiles<'_>,
) -> Result<ImageProcessor, SkillError> {
    let config: ImageProcessorConfig = files.json(FileKind::ImageProcessor)?;
    ImageProcessor::new(&config).map_err(|e| files.malformed("preprocessor_config.json", e))
}

/// Which similarity family a row of the family table is, by the media it
/// compares texts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// Images (CLIP).
    Clip,
    /// Audio (CLAP).
    Clap,
    /// Video (X-CLIP).
    XClip,
}

impl Family {
    /// The media, as the CLI's flag names it.
    pub(crate) fn media(self) -> &'static str {
        match self {
            Self::Clip => "image",
            Self::Clap => "audio",
            Self::XClip => "video",
        }
    }
}

skill_api!(
    SimilarityModel,
    SkillKind::Similarity,
    "a text-media similarity model"
);

impl SimilarityModel {
    /// The network and everything the task needs besides the opened
    /// files, on the first backend of the chain for `backend` that can hold
    /// it.
    fn from_files(mut files: ModelFiles<'_>, backend: BackendKind) -> Result<Self, SkillError> {
        let Task::Similarity(family) = files.family.task else {
            return Err(files.wrong_task());
        };
        let tokenizer = files.tokenizer()?;
        let (loaded, device, kind) = match family {
            Family::Clip => load_clip(&mut files, &tokenizer, backend)?,
            Family::Clap => load_clap(&mut files, backend)?,
            Family::XClip => load_xclip(&mut files, &tokenizer, backend)?,
        };
        Ok(Self {
            model: loaded,
            tokenizer,
            device,
            loaded: files.finish(kind),
        })
    }

    /// Scores each of `texts` against `media`.
    pub fn score(
        &self,
        media: Media<'_>,
        texts: &[String],
        options: SimilarityOptions,
    ) -> Result<Similarity, SkillError> {
        if texts.is_empty() {
            return Err(SkillError::InvalidInput(
                "no texts to compare with".to_owned(),
            ));
        }
        let scored = match (&self.model, media) {
            (Model::Clip { model, processor }, Media::Image(image)) => {
                let (values, w, h) = processor.pixel_values(image);
                let pixels =
                    Tensor::from_vec(values, (1, 3, h as usize, w as usize), &self.device)?;
                let image_embeds = model.image_embeds(&pixels)?;
                let text_embeds = self.text_embeds(texts, model.text.max_positions(), |ids| {
                    model.text_embeds(ids)
                })?;
                let logits = ((text_embeds.matmul(&image_embeds.t()?)?
                    * f64::from(model.scale()))?)
                .squeeze(1)?;
                Scored {
                    logits,
                    input: ("pixel_values", pixels),
                    text_embeds,
                    media_embeds: ("image_embeds", image_embeds),
                }
            }
            (
                Model::ClipOnnx {
                    model,
                    processor,
                    max_positions,
                    pad_id,
                    ..
                },
                Media::Image(image),
            ) => {
                let (values, w, h) = processor.pixel_values(image);
                let (h, w) = (h as usize, w as usize);
                let batch = self.padded_batch(texts, *max_positions, *pad_id)?;
                let output = model.forward(batch, values.clone(), vec![1, 3, h, w])?;
                Scored {
                    logits: output.logits,
                    input: (
                        "pixel_values",
                        Tensor::from_vec(values, (1, 3, h, w), &Device::Cpu)?,
                    ),
                    text_embeds: output.text_embeds,
                    media_embeds: ("image_embeds", output.media_embeds),
                }
            }
            (Model::Clap { model, extractor }, Media::Audio(audio)) => {
                let audio = resample(audio, extractor.config().sampling_rate)?;
                let features = extractor.features(&audio.samples)?;
                let shape = (1, features.channels, features.frames, features.mels);
                let input = Tensor::from_vec(features.values, shape, &self.device)?;
                let audio_embeds = model.audio_embeds(&input, features.is_longer)?;
                let text_embeds =
                    self.text_embeds(texts, model.text.max_tokens(), |ids| model.text_embeds(ids))?;
                // logits_per_audio: scaled by logit_scale_a.
                let logits = ((audio_embeds.matmul(&text_embeds.t()?)?
                    * f64::from(model.audio_scale()))?)
                .squeeze(0)?;
                Scored {
                    logits,
                    input: ("input_features", input),
                    text_embeds,
                    media_embeds: ("audio_embeds", audio_embeds),
                }
            }
            (
                Model::ClapOnnx {
                    model,
                    extractor,
                    max_tokens,
                    pad_id,
                },
                Media::Audio(audio),
            ) => {
                let (audio_embeds, scale, input) = clap_audio_onnx(model, extractor, audio)?;
                let batch = self.padded_batch(texts, *max_tokens, *pad_id)?;
                let text_embeds = model.text_embeds(batch)?;
                let logits =
                    ((audio_embeds.matmul(&text_embeds.t()?)? * f64::from(scale))?).squeeze(0)?;
                Scored {
                    logits,
                    input: ("input_features", input),
                    text_embeds,
                    media_embeds: ("audio_embeds", audio_embeds),
                }
            }
            (Model::XClip { model, processor }, Media::Video(frames)) => {
                let pixels = xclip::video_pixel_values(processor, frames, model, &self.device)
                    .map_err(|e| model_error(&self.loaded.name, e))?;
                let text_features = self.text_embeds(texts, model.text.max_positions(), |ids| {
                    model.text_features(ids)
                })?;
                let output = model.forward(&pixels, &text_features)?;
                Scored {
                    logits: output.logits_per_video.squeeze(0)?,
                    input: ("pixel_values", pixels),
                    text_embeds: output.text_embeds,
                    media_embeds: ("video_embeds", output.video_embeds),
                }
            }
            (
                Model::XClipOnnx {
                    model,
                    processor,
                    max_positions,
                    pad_id,
                    frames: (num_frames, side),
                },
                Media::Video(frames),
            ) => {
                let pixels =
                    xclip::video_pixels(processor, frames, (*num_frames, *side), &Device::Cpu)
                        .map_err(|e| model_error(&self.loaded.name, e))?;
                let batch = self.padded_batch(texts, *max_positions, *pad_id)?;
                let values = pixels.flatten_all()?.to_vec1()?;
                let output = model.forward(batch, values, pixels.dims().to_vec())?;
                Scored {
                    logits: output.logits,
                    input: ("pixel_values", pixels),
                    text_embeds: output.text_embeds,
                    media_embeds: ("video_embeds", output.media_embeds),
                }
            }
            (model, media) => {
                return Err(SkillError::InvalidInput(format!(
                    "model '{}' takes {}, not {}",
                    self.loaded.name,
                    model.takes(),
                    media.name()
                )))
            }
        };
        let logits: Vec<f32> = scored.logits.to_vec1()?;
        let mut result = Similarity {
            probs: softmax(&logits),
            logits,
            preprocessed: BTreeMap::new(),
            outputs: BTreeMap::new(),
        };
        if options.return_inputs {
            let (name, tensor) = &scored.input;
            result
                .preprocessed
                .insert((*name).to_owned(), Array::from_tensor(tensor)?);
        }
        if options.return_embeddings {
            result.outputs.insert(
                "text_embeds".to_owned(),
                Array::from_tensor(&scored.text_embeds)?,
            );
            let (name, tensor) = &scored.media_embeds;
            result
                .outputs
                .insert((*name).to_owned(), Array::from_tensor(tensor)?);
        }
        Ok(result)
    }

    /// Tokenizes each text (with the tokenizer's special tokens) and stacks
    /// their embeddings `[texts, dim]`.
    fn text_embeds(
        &self,
        texts: &[String],
        max_tokens: usize,
        embed: impl Fn(&[u32]) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor, SkillError> {
        let mut rows = Vec::with_capacity(texts.len());
        for encoding in self.encode(texts, max_tokens)? {
            rows.push(embed(encoding.get_ids())?);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// Tokenizes each text (with the tokenizer's special tokens), refusing
    /// texts longer than `max_tokens`.
    fn encode(&self, texts: &[String], max_tokens: usize) -> Result<Vec<Encoding>, SkillError> {
        let mut encodings = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let encoding =
                self.tokenizer
                    .encode(text.as_str(), true)
                    .map_err(|e| SkillError::Tokenizer {
                        model: self.loaded.name.clone(),
                        source: e,
                    })?;
            let len = encoding.get_ids().len();
            if len > max_tokens {
                return Err(SkillError::InvalidInput(format!(
                    "text {} has {len} tokens; the model takes at most {max_tokens}",
                    i + 1
                )));
            }
            encodings.push(encoding);
        }
        Ok(encodings)
    }

    /// The texts as one batch padded (on the right, with `pad_id`) to the
    /// longest, with its attention mask: transformers' processor with
    /// `padding=True`.
    fn padded_batch(
        &self,
        texts: &[String],
        max_tokens: usize,
        pad_id: u32,
    ) -> Result<TextBatch, SkillError> {
        let encodings = self.encode(texts, max_tokens)?;
        let seq = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let rows = encodings.len();
        let mut ids = Vec::with_capacity(rows * seq);
        let mut mask = Vec::with_capacity(rows * seq);
        for e in &encodings {
            let pad = seq - e.len();
            ids.extend(e.get_ids().iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(i64::from(pad_id), pad));
            mask.extend(std::iter::repeat_n(1, e.len()));
            mask.extend(std::iter::repeat_n(0, pad));
        }
        Ok(TextBatch {
            rows,
            seq,
            ids,
            mask,
        })
    }
}

/// Loads a CLIP model and its image processor: the ONNX graph on ONNX
/// Runtime / OpenVINO when the model ships one, candle otherwise.
fn load_clip(
    files: &mut ModelFiles<'_>,
    tokenizer: &Tokenizer,
    backend: BackendKind,
) -> Result<(Model, Device, BackendKind), SkillError> {
    let (loader, model, name, config) = (
        files.loader,
        files.model,
        files.name.clone(),
        files.config.clone(),
    );
    let config = &config;
    let processor = load_image_processor(files)?;
    let cfg: clip::ClipConfig = files.parse()?;
    let side = cfg.vision_config.image_size as u32;
    let (w, h) = processor.output_size(side, side);
    if (w, h) != (side, side) {
        return Err(malformed(
            &name,
            "preprocessor_config.json",
            format!("it produces {w}x{h} images; the vision tower takes {side}x{side}"),
        ));
    }
    let graph = onnx_graph(loader, model, backend)?;
    files.files.extend(graph.iter().cloned());
    let pad_id = match graph {
        Some(_) => Some(clip_pad_id(files, tokenizer, cfg.text_config.eos_token_id)?),
        None => None,
    };
    let ((tower, device, weight_files), kind) = load_on_chain_with_onnx(
        backend,
        graph.is_some(),
        |executor| {
            let session = open_session(executor, graph.as_ref())?;
            Ok((
                ClipTower::Onnx(OnnxClip::new(session, MediaKind::Image)?),
                Device::Cpu,
                Vec::new(),
            ))
        },
        |device| {
            // Weights only for candle: an ONNX run does not fetch them.
            let weight_files = loader.from_pretrained(model, FileKind::Weights)?;
            let vb = var_builder(loader, &name, config, &weight_files, DType::F32, device)?;
            let clip = clip::Clip::load(&cfg, vb)
                .map_err(|e| model_error(&name, ModelError::Tensor(e)))?;
            Ok((
                ClipTower::Candle(Box::new(clip)),
                device.clone(),
                weight_files,
            ))
        },
    )?;
    files.files.extend(weight_files);
    let loaded = match tower {
        ClipTower::Candle(model) => Model::Clip { model, processor },
        ClipTower::Onnx(model) => Model::ClipOnnx {
            model,
            processor,
            max_positions: cfg.text_config.max_position_embeddings,
            pad_id: pad_id.unwrap_or(cfg.text_config.eos_token_id),
            image_side: side as usize,
        },
    };
    Ok((loaded, device, kind))
}

/// CLIP on the backend that loaded it.
#[derive(Debug)]
enum ClipTower {
    Candle(Box<clip::Clip>),
    Onnx(OnnxClip),
}

/// The id transformers' processor pads CLIP texts with: the tokenizer's own
/// padding when `tokenizer.json` sets one, else `pad_token` of
/// `tokenizer_config.json`, else the text tower's EOS (CLIP's usual pad).
fn clip_pad_id(
    files: &mut ModelFiles<'_>,
    tokenizer: &Tokenizer,
    eos_token_id: u32,
) -> Result<u32, SkillError> {
    if let Some(padding) = tokenizer.get_padding() {
        return Ok(padding.pad_id);
    }
    let Some(tokenizer_config) = files.optional_json("tokenizer_config.json")? else {
        return Ok(eos_token_id);
    };
    let pad_token = tokenizer_config.get("pad_token").and_then(|t| {
        t.as_str()
            .or_else(|| t.get("content").and_then(Value::as_str))
    });
    match pad_token {
        Some(token) => tokenizer.token_to_id(token).ok_or_else(|| {
            files.malformed(
                "tokenizer_config.json",
                format!("pad_token '{token}' is not in the vocabulary"),
            )
        }),
        None => Ok(eos_token_id),
    }
}

/// Loads an X-CLIP model and its frame processor (VideoMAE's): our ONNX
/// graph on ONNX Runtime / OpenVINO (the model's own, or exported on first
/// use), candle otherwise.
fn load_xclip(
    files: &mut ModelFiles<'_>,
    tokenizer: &Tokenizer,
    backend: BackendKind,
) -> Result<(Model, Device, BackendKind), SkillError> {
    let processor_config: Value = files.json(FileKind::ImageProcessor)?;
    let processor = xclip::frame_processor(&processor_config)
        .map_err(|e| files.malformed("preprocessor_config.json", e))?;
    let cfg: xclip::XClipConfig = files.parse()?;
    cfg.check().map_err(|e| files.model_error(e))?;
    let weight_files = files.weight_files()?;
    let graph = onnx_graph(files.loader, files.model, backend)?;
    files.files.extend(graph.iter().cloned());
    let pad_id = match graph {
        Some(_) => Some(clip_pad_id(files, tokenizer, cfg.text_config.eos_token_id)?),
        None => None,
    };
    let (loader, name, config) = (files.loader, &files.name, &files.config);
    let (tower, kind) = load_on_chain_with_onnx(
        backend,
        graph.is_some(),
        |executor| {
            let session = open_session(executor, graph.as_ref())?;
            Ok((
                XClipTower::Onnx(OnnxClip::new(session, MediaKind::Video)?),
                Device::Cpu,
            ))
        },
        |device| {
            let vb = var_builder(loader, name, config, &weight_files, DType::F32, device)?;
            let model = xclip::XClip::load(&cfg, vb)
                .map_err(|e| model_error(name, ModelError::Tensor(e)))?;
            Ok((XClipTower::Candle(Box::new(model)), device.clone()))
        },
    )?;
    let (loaded, device) = match tower {
        (XClipTower::Candle(model), device) => (Model::XClip { model, processor }, device),
        (XClipTower::Onnx(model), device) => (
            Model::XClipOnnx {
                model,
                processor,
                max_positions: cfg.text_config.max_position_embeddings,
                pad_id: pad_id.unwrap_or(cfg.text_config.eos_token_id),
                frames: (cfg.vision_config.num_frames, cfg.vision_config.image_size),
            },
            device,
        ),
    };
    Ok((loaded, device, kind))
}

/// X-CLIP on the backend that loaded it.
#[derive(Debug)]
enum XClipTower {
    Candle(Box<xclip::XClip>),
    Onnx(OnnxClip),
}

/// Loads a CLAP model and its feature extractor, and checks that the
/// extractor's output fits the audio tower: our two ONNX graphs on ONNX
/// Runtime / OpenVINO (the model's own, or exported on first use), candle
/// otherwise.
fn load_clap(
    files: &mut ModelFiles<'_>,
    backend: BackendKind,
) -> Result<(Model, Device, BackendKind), SkillError> {
    let extractor_config: ClapFeatureConfig = files.json(FileKind::FeatureExtractor)?;
    let extractor = ClapFeatureExtractor::new(extractor_config)
        .map_err(|e| files.malformed("preprocessor_config.json", e))?;
    let weight_files = files.weight_files()?;
    let cfg: clap::ClapConfig = files.parse()?;
    let audio = &cfg.audio_config;
    clap::check_audio_config(audio)
        .map_err(|e| files.model_error(ModelError::Config(format!("audio_config: {e}"))))?;
    let (loader, name, config) = (files.loader, files.name.clone(), files.config.clone());
    let name = &name;
    if audio.enable_fusion != (extractor.channels() == 4) {
        return Err(malformed(
            name,
            "preprocessor_config.json",
            format!(
                "truncation '{}' gives {}-channel features; the model (enable_fusion={}) takes {}",
                extractor.config().truncation.name(),
                extractor.channels(),
                audio.enable_fusion,
                if audio.enable_fusion { 4 } else { 1 }
            ),
        ));
    }
    for frames in extractor.frame_counts() {
        clap::check_feature_size(audio, frames, extractor.config().feature_size)
            .map_err(|e| malformed(name, "preprocessor_config.json", e))?;
    }
    let graphs = graph_set(loader, files.model, backend, &CLAP_GRAPHS, &mut files.files)?;
    let (tower, kind) = load_on_chain_with_onnx(
        backend,
        graphs.is_some(),
        |executor| {
            let Some([text, audio]) = graphs.as_deref() else {
                return Err(no_graphs(executor.kind(), &CLAP_GRAPHS));
            };
            // For a graph without `logit_scale` (transformers.js's).
            let scale = || {
                let vb = var_builder(
                    loader,
                    name,
                    &config,
                    &weight_files,
                    DType::F32,
                    &Device::Cpu,
                )?;
                clip::scalar(&vb, "logit_scale_a")
                    .map(f32::exp)
                    .map_err(|e| model_error(name, ModelError::Tensor(e)))
            };
            let model = OnnxClap::new(
                executor.session(&text.path)?,
                executor.session(&audio.path)?,
                cfg.audio_config.enable_fusion,
                scale,
            )?;
            Ok((ClapTower::Onnx(Box::new(model)), Device::Cpu))
        },
        |device| {
            let vb = var_builder(loader, name, &config, &weight_files, DType::F32, device)?;
            let clap =
                clap::Clap::load(&cfg, vb).map_err(|e| model_error(name, ModelError::Tensor(e)))?;
            Ok((ClapTower::Candle(Box::new(clap)), device.clone()))
        },
    )?;
    let (loaded, device) = match tower {
        (ClapTower::Candle(model), device) => (Model::Clap { model, extractor }, device),
        (ClapTower::Onnx(model), device) => (
            Model::ClapOnnx {
                model,
                extractor,
                max_tokens: cfg.text_config.max_tokens(),
                pad_id: cfg.text_config.pad_token_id,
            },
            device,
        ),
    };
    Ok((loaded, device, kind))
}

/// CLAP on the backend that loaded it.
#[derive(Debug)]
enum ClapTower {
    Candle(Box<clap::Clap>),
    Onnx(Box<OnnxClap>),
}

/// One clip through [`OnnxClap`]'s audio graph: its embeddings `[1, dim]`,
/// the logit scale, and the features `[1, c, frames, mels]` it was given.
fn clap_audio_onnx(
    model: &OnnxClap,
    extractor: &ClapFeatureExtractor,
    audio: &Audio,
) -> Result<(Tensor, f32, Tensor), SkillError> {
    let audio = resample(audio, extractor.config().sampling_rate)?;
    let features = extractor.features(&audio.samples)?;
    let shape = (1, features.channels, features.frames, features.mels);
    let input = Tensor::from_vec(features.values.clone(), shape, &Device::Cpu)?;
    let (embeds, scale) = model.audio_embeds(AudioInput {
        values: features.values,
        channels: features.channels,
        frames: features.frames,
        mels: features.mels,
        is_longer: features.is_longer,
    })?;
    Ok((embeds, scale, input))
}

/// Softmax in f64 (stable for large logits).
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}
