//! LLaVA (`LlavaForConditionalGeneration`) and LLaVA-NeXT
//! (`LlavaNextForConditionalGeneration`): a CLIP vision tower, a two-layer
//! projector and a LLaMA decoder whose image-token embeddings are replaced
//! by the projected vision features. LLaVA-NeXT feeds the tower a base view
//! plus grid tiles and packs their features row by row, dropping padding
//! and ending each row with the learned `image_newline`.

use crate::clip::{ClipVision, ClipVisionConfig};
use crate::layers::activation::Activation;
use crate::layers::linear::{linear_b, Linear};
use crate::llama::{Llama, LlamaConfig};
use crate::ModelError;
use candle_core::{Result, Tensor, D};
use candle_nn::{Module, VarBuilder};
use ipfs_accelerate_media::preprocess::anyres::{select_best_resolution, unpadded_span};
use serde::Deserialize;
use serde_json::Value;

/// `config.json`'s `model_type` for LLaVA.
pub const MODEL_TYPE: &str = "llava";

/// `config.json`'s `model_type` for LLaVA-NeXT (any-resolution tiling).
pub const NEXT_MODEL_TYPE: &str = "llava_next";

/// Which vision hidden state(s) feed the projector.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FeatureLayer {
    /// One index into the hidden states (negative from the end).
    One(i64),
    /// Several, concatenated along the features.
    Many(Vec<i64>),
}

impl FeatureLayer {
    fn indices(&self) -> Vec<i64> {
        match self {
            Self::One(i) => vec![*i],
            Self::Many(v) => v.clone(),
        }
    }
}

/// `vision_feature_select_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectStrategy {
    /// Drop the CLS position.
    Default,
    /// Keep every position.
    Full,
}

/// `LlavaConfig` / `LlavaNextConfig` (defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
pub struct LlavaConfig {
    pub model_type: String,
    #[serde(default = "default_image_token")]
    pub image_token_index: u32,
    #[serde(default = "default_projector_act")]
    pub projector_hidden_act: Activation,
    #[serde(default = "yes")]
    pub multimodal_projector_bias: bool,
    #[serde(default = "default_feature_layer")]
    pub vision_feature_layer: FeatureLayer,
    #[serde(default = "default_strategy")]
    pub vision_feature_select_strategy: SelectStrategy,
    #[serde(default = "default_pinpoints")]
    pub image_grid_pinpoints: Vec<[u32; 2]>,
    pub vision_config: ClipVisionConfig,
    pub text_config: LlamaConfig,
}

fn default_image_token() -> u32 {
    32000
}
fn default_projector_act() -> Activation {
    Activation::Gelu
}
fn yes() -> bool {
    true
}
fn default_feature_layer() -> FeatureLayer {
    FeatureLayer::One(-2)
}
fn default_strategy() -> SelectStrategy {
    SelectStrategy::Default
}
fn default_pinpoints() -> Vec<[u32; 2]> {
    vec![[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
}

/// A config this family cannot build.
fn config_error(reason: impl std::fmt::Display) -> ModelError {
    ModelError::Config(reason.to_string())
}

impl LlavaConfig {
    /// LLaVA-NeXT: images are cut into tiles at any resolution.
    pub fn tiles_images(&self) -> bool {
        self.model_type == NEXT_MODEL_TYPE
    }

    /// `vision_feature_layer` as indices into the vision tower's hidden
    /// states (the embeddings' output first, then each layer's), negative
    /// indices counted from the end, as transformers indexes them.
    pub fn feature_layers(&self) -> std::result::Result<Vec<usize>, ModelError> {
        let states = self.vision_config.num_hidden_layers as i64 + 1;
        let layers = self
            .vision_feature_layer
            .indices()
            .into_iter()
            .map(|i| {
                let resolved = if i < 0 { states + i } else { i };
                usize::try_from(resolved)
                    .ok()
                    .filter(|&r| (r as i64) < states)
                    .ok_or_else(|| {
                        config_error(format!(
                            "vision_feature_layer {i} is outside the tower's {states} hidden states"
                        ))
                    })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if layers.is_empty() {
            return Err(config_error("vision_feature_layer is an empty list"));
        }
        Ok(layers)
    }

    /// Parses `config.json`, filling what published checkpoints leave out
    /// as transformers does: `LlavaConfig` builds a CLIP ViT-L/14-336
    /// vision config when there is none, and a partial `text_config` takes
    /// the defaults of its `model_type`'s config class.
    pub fn parse(config: &Value) -> std::result::Result<Self, ModelError> {
        let mut config = config.clone();
        let Some(object) = config.as_object_mut() else {
            return Err(config_error("it is not a JSON object"));
        };
        let vision = object
            .entry("vision_config")
            .or_insert_with(|| {
                serde_json::json!({
                    "hidden_size": 1024, "intermediate_size": 4096, "patch_size": 14,
                    "image_size": 336, "num_hidden_layers": 24, "num_attention_heads": 16,
                })
            })
            .clone();
        if let Some(kind) = vision.get("model_type").and_then(Value::as_str) {
            if kind != "clip_vision_model" {
                return Err(config_error(format!(
                    "vision_config.model_type '{kind}': only CLIP vision towers run here"
                )));
            }
        }
        let text = object
            .entry("text_config")
            .or_insert_with(|| serde_json::json!({"model_type": "llama"}));
        let kind = text
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("llama")
            .to_owned();
        let defaults = match kind.as_str() {
            "llama" => serde_json::json!({
                "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
                "num_hidden_layers": 32, "num_attention_heads": 32,
                "max_position_embeddings": 2048, "rms_norm_eps": 1e-6,
            }),
            "mistral" => serde_json::json!({
                "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
            }),
            other => {
                return Err(config_error(format!(
                        "text_config.model_type '{other}': only LLaMA-architecture language models (llama, mistral) run here"
                    ),
                ))
            }
        };
        if let (Some(text), Value::Object(defaults)) = (text.as_object_mut(), defaults) {
            for (key, value) in defaults {
                text.entry(key).or_insert(value);
            }
            if kind == "mistral" {
                // Mistral's sliding window only matters past its length,
                // which is then refused (see `text_context`).
                if let Some(window) = text.get("sliding_window").and_then(Value::as_u64) {
                    let limit = text
                        .get("max_position_embeddings")
                        .and_then(Value::as_u64)
                        .map_or(window, |m| m.min(window));
                    text.insert("max_position_embeddings".to_owned(), limit.into());
                }
            }
        }
        crate::parse_config(&config)
    }
}

/// The loaded model.
#[derive(Debug)]
pub struct Llava {
    vision: ClipVision,
    linear_1: Linear,
    act: Activation,
    linear_2: Linear,
    /// LLaVA-NeXT's row separator; `None` for LLaVA.
    image_newline: Option<Tensor>,
    pub language: Llama,
    layers: Vec<usize>,
    strategy: SelectStrategy,
    pinpoints: Vec<(u32, u32)>,
    tile: usize,
    patches_per_side: usize,
}

impl Llava {
    /// Loads either layout of the weights: the published one
    /// (`language_model.model.*`, `vision_tower.*`, `multi_modal_projector.*`)
    /// and the one transformers 4.52+ uses in memory (`model.language_model.*`,
    /// `model.vision_tower.*`, `lm_head.*`).
    pub fn load(cfg: &LlavaConfig, vb: VarBuilder) -> std::result::Result<Self, ModelError> {
        let nested = vb.contains_tensor("model.language_model.embed_tokens.weight");
        let (root, body, head) = if nested {
            (vb.pp("model"), vb.pp("model.language_model"), vb.clone())
        } else {
            (
                vb.clone(),
                vb.pp("language_model.model"),
                vb.pp("language_model"),
            )
        };
        let vision = ClipVision::load(&cfg.vision_config, root.pp("vision_tower.vision_model"))?;
        let layers = cfg.feature_layers()?;
        let text_hidden = cfg.text_config.hidden_size;
        let vision_width = cfg.vision_config.hidden_size * layers.len();
        let projector = root.pp("multi_modal_projector");
        let bias = cfg.multimodal_projector_bias;
        let linear_1 = linear_b(vision_width, text_hidden, bias, projector.pp("linear_1"))?;
        let linear_2 = linear_b(text_hidden, text_hidden, bias, projector.pp("linear_2"))?;
        let next = cfg.tiles_images();
        let image_newline = if next {
            Some(root.get(text_hidden, "image_newline")?)
        } else {
            None
        };
        if next && cfg.vision_feature_select_strategy == SelectStrategy::Full {
            // transformers cannot lay CLS-bearing tiles out as a grid either.
            return Err(config_error("LLaVA-NeXT packs tile features as a grid, which needs vision_feature_select_strategy 'default'",
            ));
        }
        let language = Llama::load_parts(body, head, &cfg.text_config)?;
        let tile = cfg.vision_config.image_size;
        Ok(Self {
            vision,
            linear_1,
            act: cfg.projector_hidden_act,
            linear_2,
            image_newline,
            language,
            layers,
            strategy: cfg.vision_feature_select_strategy,
            pinpoints: cfg
                .image_grid_pinpoints
                .iter()
                .map(|&[h, w]| (h, w))
                .collect(),
            tile,
            patches_per_side: tile / cfg.vision_config.patch_size,
        })
    }

    /// Side of the images the vision tower takes.
    pub fn image_size(&self) -> usize {
        self.tile
    }

    /// The grid resolutions LLaVA-NeXT's model side assumes.
    pub fn pinpoints(&self) -> &[(u32, u32)] {
        &self.pinpoints
    }

    /// Projected features of `pixel_values` `[n, 3, s, s]`: `[n, tokens, hidden]`.
    fn projected(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let states = self.vision.hidden_states(pixel_values)?;
        let selected: Vec<&Tensor> = self.layers.iter().map(|&i| &states[i]).collect();
        let mut features = Tensor::cat(&selected, D::Minus1)?;
        if self.strategy == SelectStrategy::Default {
            let positions = features.dim(1)?;
            features = features.narrow(1, 1, positions - 1)?;
        }
        let x = self.linear_1.forward(&features)?;
        self.linear_2.forward(&self.act.forward(&x)?)
    }

    /// The embeddings that replace the image tokens, `[tokens, hidden]`.
    /// LLaVA: `pixel_values` `[1, 3, s, s]`. LLaVA-NeXT: the base view and
    /// the tiles `[1 + tiles, 3, s, s]` of an image `original` `(height,
    /// width)` pixels large.
    pub fn image_features(&self, pixel_values: &Tensor, original: (u32, u32)) -> Result<Tensor> {
        let features = self.projected(pixel_values)?;
        let grid = TileGrid {
            pinpoints: &self.pinpoints,
            tile: self.tile,
            patches_per_side: self.patches_per_side,
        };
        pack_image_features(&features, self.image_newline.as_ref(), original, &grid)
    }
}

/// How LLaVA-NeXT lays tiles out: the model side's grid resolutions, the
/// tile side in pixels, and patches per tile side.
#[derive(Debug, Clone, Copy)]
pub struct TileGrid<'a> {
    /// `image_grid_pinpoints` as `(height, width)`.
    pub pinpoints: &'a [(u32, u32)],
    /// The vision tower's image side.
    pub tile: usize,
    /// `image_size / patch_size`.
    pub patches_per_side: usize,
}

/// The projected features `[n, tokens, hidden]` of one image's views, as
/// the rows that replace its image tokens `[tokens', hidden]`: LLaVA's one
/// view as is (no `newline`); LLaVA-NeXT's base view, then the tiles packed
/// row by row into the image's unpadded grid, each row ended by `newline`.
/// Shared by the candle model and the ONNX Runtime path.
pub fn pack_image_features(
    features: &Tensor,
    newline: Option<&Tensor>,
    original: (u32, u32),
    grid: &TileGrid<'_>,
) -> Result<Tensor> {
    let Some(newline) = newline else {
        return features.squeeze(0);
    };
    let (count, _, hidden) = features.dims3()?;
    let base = features.get(0)?;
    if count == 1 {
        return Tensor::cat(&[&base, &newline.unsqueeze(0)?], 0);
    }
    let (grid_h, grid_w) = select_best_resolution(original, grid.pinpoints);
    let (rows, cols) = (grid_h as usize / grid.tile, grid_w as usize / grid.tile);
    if rows * cols != count - 1 {
        candle_core::bail!(
            "the image was cut into {} tiles but the model's image_grid_pinpoints give a {rows}x{cols} grid",
            count - 1
        );
    }
    let side = grid.patches_per_side;
    // [tiles, side*side, D] -> [D, rows*side, cols*side] as transformers'
    // view(rows, cols, side, side, D).permute(4, 0, 2, 1, 3).
    let packed = features
        .narrow(0, 1, count - 1)?
        .reshape((rows, cols, side, side, hidden))?
        .permute((4, 0, 2, 1, 3))?
        .reshape((hidden, rows * side, cols * side))?;
    let ((top, height), (left, width)) = unpadded_span(original, (rows * side, cols * side));
    let packed = packed.narrow(1, top, height)?.narrow(2, left, width)?;
    let newlines = newline
        .reshape((hidden, 1, 1))?
        .broadcast_as((hidden, height, 1))?;
    let packed = Tensor::cat(&[&packed, &newlines], 2)?
        .reshape((hidden, height * (width + 1)))?
        .t()?;
    Tensor::cat(&[&base, &packed], 0)
}

impl crate::CheckConfig for LlavaConfig {
    fn check(&self) -> std::result::Result<(), ModelError> {
        self.vision_config.check()?;
        self.text_config.check()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// llava-hf/llava-1.5-7b-hf's config.json leaves most of both towers to
    /// the config classes' defaults.
    #[test]
    fn partial_published_configs_take_transformers_defaults() {
        let config = json!({
            "architectures": ["LlavaForConditionalGeneration"],
            "ignore_index": -100, "image_token_index": 32000, "model_type": "llava",
            "pad_token_id": 32001, "projector_hidden_act": "gelu",
            "text_config": {
                "_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                "torch_dtype": "float16", "vocab_size": 32064
            },
            "tie_word_embeddings": false, "vision_config": {
                "hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                "model_type": "clip_vision_model", "num_attention_heads": 16,
                "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768, "vocab_size": 32000
            },
            "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
            "vocab_size": 32064
        });
        let cfg = LlavaConfig::parse(&config).unwrap();
        assert_eq!(cfg.text_config.hidden_size, 4096);
        assert_eq!(cfg.text_config.num_hidden_layers, 32);
        assert_eq!(cfg.text_config.intermediate_size, 11008);
        assert_eq!(cfg.text_config.vocab_size, 32064);
        assert_eq!(cfg.text_config.max_position_embeddings, 4096);
        assert_eq!(cfg.vision_config.image_size, 336);
        assert_eq!(cfg.vision_config.hidden_act, Activation::QuickGelu);
        assert!(matches!(cfg.vision_feature_layer, FeatureLayer::One(-2)));

        // llava-v1.6-mistral: a Mistral language model, a null sliding window.
        let mistral = json!({
            "model_type": "llava_next", "image_token_index": 32000,
            "text_config": {
                "intermediate_size": 14336, "max_position_embeddings": 32768,
                "model_type": "mistral", "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
                "rope_theta": 1000000.0, "sliding_window": null, "vocab_size": 32064
            },
            "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
            "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14}
        });
        let cfg = LlavaConfig::parse(&mistral).unwrap();
        assert_eq!(cfg.text_config.num_key_value_heads, Some(8));
        assert_eq!(cfg.text_config.max_position_embeddings, 32768);
        assert_eq!(cfg.image_grid_pinpoints.len(), 5);

        // A language model this skill cannot run is named.
        let other = json!({"model_type": "llava", "text_config": {"model_type": "qwen2"}});
        let err = LlavaConfig::parse(&other).unwrap_err().to_string();
        assert!(err.contains("qwen2"), "{err}");
    }
}
