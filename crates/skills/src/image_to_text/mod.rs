//! Image-conditioned text generation (LLaVA, LLaVA-NeXT): the prompt's image
//! token is expanded into one token per image feature, as the transformers
//! processors expand it, and generation runs through the shared token loop.

use crate::array::Array;
use crate::load::backend_chain::load_on_chain_with_onnx;
use crate::load::onnx_graph::{graph_set, no_graphs};
use crate::load::weights::{malformed, var_builder};
use crate::load::{model_error, skill_api, Loaded, ModelFiles};
use crate::similarity::load_image_processor;
use crate::text_generation::chat_template::render_chat;
use crate::text_generation::decode_loop::{self, LoopInputs};
use crate::text_generation::{generation_config, ChatTemplate};
use crate::text_generation::{GenerateOptions, Generation};
use crate::{SkillError, SkillKind};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_loader::FileKind;
use ipfs_accelerate_media::preprocess::anyres::{AnyResConfig, AnyResProcessor};
use ipfs_accelerate_media::preprocess::image_processor::ImageProcessor;
use ipfs_accelerate_models::llava;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokenizers::Tokenizer;

mod llava_model;
use llava_model::{LlavaModel, OnnxLlava, LLAVA_GRAPHS};

/// The image token a prompt holds when `processor_config.json` names none.
const DEFAULT_IMAGE_TOKEN: &str = "<image>";

/// What a request asks for besides the generation.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptionOptions {
    /// Add the model inputs (`input_ids`, `pixel_values`).
    pub return_inputs: bool,
}

/// A generated answer about an image.
#[derive(Debug, Clone, Serialize)]
pub struct Caption {
    /// The generation (ids, text, stop reason, optional first logits).
    #[serde(flatten)]
    pub generation: Generation,
    /// How many tokens the image became.
    pub image_tokens: usize,
    /// The prompt's ids with the image token expanded, when asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_ids: Vec<u32>,
    /// Preprocessed inputs, when asked.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub preprocessed: BTreeMap<String, Array>,
}

#[derive(Debug)]
enum Processor {
    /// LLaVA: one CLIP-processed view.
    Single(ImageProcessor),
    /// LLaVA-NeXT: base view plus grid tiles.
    Tiled(AnyResProcessor),
}

/// A loaded LLaVA / LLaVA-NeXT model with its tokenizer and image processor.
#[derive(Debug)]
pub struct ImageCaptioner {
    loaded: Loaded,
    // One sequence at a time: the language model holds its own KV cache.
    model: Mutex<LlavaModel>,
    processor: Processor,
    tokenizer: Tokenizer,
    image_token: String,
    image_token_id: u32,
    eos_ids: Vec<u32>,
    device: Device,
    chat_template: Option<ChatTemplate>,
}

skill_api!(
    ImageCaptioner,
    SkillKind::ImageToText,
    "an image-to-text model (LLaVA)"
);

impl ImageCaptioner {
    /// The network and everything the task needs besides the opened
    /// files, on the first backend of the chain for `backend` that can hold
    /// it.
    fn from_files(mut files: ModelFiles<'_>, backend: BackendKind) -> Result<Self, SkillError> {
        let loader = files.loader;
        let (name, config) = (files.name.clone(), files.config.clone());
        let cfg = llava::LlavaConfig::parse(&config).map_err(|e| files.model_error(e))?;
        let generation = files.generation_config()?;
        let mut eos_ids = generation_config::eos_ids(&config, generation.as_ref());
        if eos_ids.is_empty() {
            eos_ids = generation_config::eos_ids(&config["text_config"], None);
        }
        let processor = if cfg.tiles_images() {
            let any: AnyResConfig = files.json(FileKind::ImageProcessor)?;
            Processor::Tiled(
                AnyResProcessor::new(&any)
                    .map_err(|e| malformed(&name, "preprocessor_config.json", e))?,
            )
        } else {
            Processor::Single(load_image_processor(&mut files)?)
        };
        let image_token = match files.optional_json("processor_config.json")? {
            Some(value) => value
                .get("image_token")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(DEFAULT_IMAGE_TOKEN)
                .to_owned(),
            None => DEFAULT_IMAGE_TOKEN.to_owned(),
        };
        let tokenizer = files.tokenizer()?;
        // Processors keep their template in `chat_template.json`; older
        // checkpoints keep it in `tokenizer_config.json`.
        let tokenizer_config = files.optional_json("tokenizer_config.json")?;
        let chat_template = match files.optional_json("chat_template.json")? {
            Some(file) => ChatTemplate::from_processor_file(&file, tokenizer_config.as_ref()),
            None => tokenizer_config
                .as_ref()
                .and_then(ChatTemplate::from_tokenizer_config),
        };
        let image_token_id =
            tokenizer
                .token_to_id(&image_token)
                .ok_or_else(|| SkillError::Tokenizer {
                    model: name.clone(),
                    source: format!("it has no '{image_token}' token for the image").into(),
                })?;
        if image_token_id != cfg.image_token_index {
            return Err(malformed(
                &name,
                "config.json",
                format!(
                    "image_token_index is {} but the tokenizer's '{image_token}' is {image_token_id}",
                    cfg.image_token_index
                ),
            ));
        }
        let weight_files = files.weight_files()?;
        let graphs = graph_set(
            loader,
            files.model,
            backend,
            &LLAVA_GRAPHS,
            &mut files.files,
        )?;
        let text_config = config.get("text_config").cloned().unwrap_or_default();
        let ((llava, device), kind) = load_on_chain_with_onnx(
            backend,
            graphs.is_some(),
            |executor| {
                let Some([vision, embed, decoder]) = graphs.as_deref() else {
                    return Err(no_graphs(executor.kind(), &LLAVA_GRAPHS));
                };
                let sessions = [
                    executor.session(&vision.path)?,
                    executor.session(&embed.path)?,
                    executor.session(&decoder.path)?,
                ];
                let model = OnnxLlava::new(sessions, &cfg, &text_config)?;
                Ok((LlavaModel::Onnx(Box::new(model)), Device::Cpu))
            },
            |device| {
                let vb = var_builder(loader, &name, &config, &weight_files, DType::F32, device)?;
                let model = llava::Llava::load(&cfg, vb).map_err(|e| model_error(&name, e))?;
                Ok((LlavaModel::Candle(Box::new(model)), device.clone()))
            },
        )?;
        let side = llava.image_size() as u32;
        let produced = match &processor {
            Processor::Single(p) => p.output_size(side, side),
            Processor::Tiled(p) => {
                if p.pinpoints() != llava.pinpoints() {
                    return Err(malformed(
                        &name,
                        "preprocessor_config.json",
                        "its image_grid_pinpoints differ from config.json's",
                    ));
                }
                // Tiles come out at the CLIP processor's output size.
                let probe = RgbImage::new(side, side);
                let tiles = p.tiles(&probe);
                (tiles.side, tiles.side)
            }
        };
        if produced != (side, side) {
            return Err(malformed(
                &name,
                "preprocessor_config.json",
                format!(
                    "it produces {}x{} images; the vision tower takes {side}x{side}",
                    produced.0, produced.1
                ),
            ));
        }
        Ok(Self {
            model: Mutex::new(llava),
            processor,
            tokenizer,
            image_token,
            image_token_id,
            eos_ids,
            device,
            chat_template,
            loaded: files.finish(kind),
        })
    }

    /// `messages` rendered through the model's chat template with the
    /// generation prompt; image content parts (`{"type": "image"}`) render
    /// as the template places the image token.
    pub fn chat_prompt(&self, messages: &serde_json::Value) -> Result<String, SkillError> {
        render_chat(self.chat_template.as_ref(), &self.loaded.name, messages)
    }

    /// The token that marks where the image goes in a prompt.
    pub fn image_token(&self) -> &str {
        &self.image_token
    }

    /// Generates an answer to `prompt` about `image`. The prompt must hold
    /// the image token exactly once; one is put in front (followed by a
    /// newline) when it holds none.
    pub fn caption(
        &self,
        image: &RgbImage,
        prompt: &str,
        options: &GenerateOptions,
        caption_options: CaptionOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Caption, SkillError> {
        if prompt.trim().is_empty() {
            return Err(SkillError::InvalidInput("the prompt is empty".to_owned()));
        }
        if options.max_new_tokens == 0 {
            return Err(SkillError::InvalidInput(
                "max_new_tokens must be at least 1".to_owned(),
            ));
        }
        let prompt = match prompt.matches(self.image_token.as_str()).count() {
            0 => format!("{}\n{prompt}", self.image_token),
            1 => prompt.to_owned(),
            n => {
                return Err(SkillError::InvalidInput(format!(
                    "the prompt holds {n} '{}' tokens; caption takes one image",
                    self.image_token
                )))
            }
        };
        let (width, height) = image.dimensions();
        let (pixels, shape) = match &self.processor {
            Processor::Single(p) => {
                let (values, w, h) = p.pixel_values(image);
                (values, vec![1, 3, h as usize, w as usize])
            }
            Processor::Tiled(p) => {
                let tiles = p.tiles(image);
                let s = tiles.side as usize;
                (tiles.values, vec![tiles.count, 3, s, s])
            }
        };
        let pixel_values = Tensor::from_vec(pixels, shape.as_slice(), &self.device)?;
        let mut model = self.model.lock().map_err(|_| {
            SkillError::InvalidInput("the model is unusable after an earlier failure".to_owned())
        })?;
        let features = model.image_features(&pixel_values, (height, width))?;
        let image_tokens = features.dim(0)?;
        // Expand the image token in the text, as the processors do, so the
        // tokenizer sees exactly what it sees in transformers.
        let expanded = prompt.replacen(
            self.image_token.as_str(),
            &self.image_token.repeat(image_tokens),
            1,
        );
        let encoding = self
            .tokenizer
            .encode(expanded.as_str(), true)
            .map_err(|e| SkillError::Tokenizer {
                model: self.loaded.name.clone(),
                source: e,
            })?;
        let ids = encoding.get_ids().to_vec();
        let positions: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == self.image_token_id)
            .map(|(i, _)| i)
            .collect();
        if positions.len() != image_tokens {
            return Err(SkillError::Tokenizer {
                model: self.loaded.name.clone(),
                source: format!(
                    "the expanded prompt has {} image tokens instead of {image_tokens}",
                    positions.len()
                )
                .into(),
            });
        }
        // A model without a position limit (dynamic RoPE scaling) still gets
        // one: attention over the prompt is sized by it.
        let context = model
            .context_length()
            .unwrap_or(decode_loop::UNBOUNDED_CONTEXT_CAP);
        if ids.len() >= context {
            return Err(SkillError::InvalidInput(format!(
                    "the prompt with its {image_tokens} image tokens is {} tokens but model '{}' holds {context} positions; shorten it",
                    ids.len(),
                    self.loaded.name
                )));
        }
        let room = context - ids.len();
        let embeds = merge_image_features(&model.embed(&ids)?, &positions, &features)?;
        model.reset();
        let first = model.forward_embeds(&embeds)?;
        let inputs = LoopInputs {
            tokenizer: &self.tokenizer,
            eos_ids: &self.eos_ids,
            options,
            context: ids.clone(),
            room,
            model: &self.loaded.name,
        };
        let result = decode_loop::run(inputs, first, &mut |token| model.forward(&[token]), on_text);
        model.reset();
        let mut preprocessed = BTreeMap::new();
        if caption_options.return_inputs {
            preprocessed.insert(
                "pixel_values".to_owned(),
                Array::from_tensor(&pixel_values)?,
            );
        }
        Ok(Caption {
            generation: result?,
            image_tokens,
            input_ids: if caption_options.return_inputs {
                ids
            } else {
                Vec::new()
            },
            preprocessed,
        })
    }
}

/// Puts `features` rows at the image-token `positions` of `embeds`
/// `[1, seq, hidden]` (transformers' `masked_scatter`).
fn merge_image_features(
    embeds: &Tensor,
    positions: &[usize],
    features: &Tensor,
) -> candle_core::Result<Tensor> {
    let seq = embeds.dim(1)?;
    let text = embeds.squeeze(0)?;
    let mut pieces = Vec::new();
    let mut next = 0;
    let mut feature = 0;
    // Image tokens come in runs; copy text spans and feature spans in order.
    while next < seq {
        if feature < positions.len() && positions[feature] == next {
            let mut run = 1;
            while feature + run < positions.len() && positions[feature + run] == next + run {
                run += 1;
            }
            pieces.push(features.narrow(0, feature, run)?);
            feature += run;
            next += run;
        } else {
            let end = positions.get(feature).copied().unwrap_or(seq);
            pieces.push(text.narrow(0, next, end - next)?);
            next = end;
        }
    }
    Tensor::cat(&pieces, 0)?.unsqueeze(0)
}
