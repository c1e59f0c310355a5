//! LLaVA and LLaVA-NeXT as three graphs, so the image features are merged
//! into the text embeddings outside them, exactly as the candle path does
//! (any-resolution tiling and packing included):
//!
//! - `vision_encoder.onnx`: `pixel_values` `[image_batch_size, 3, s, s]`
//!   (LLaVA-NeXT: the base view and the tiles) -> `image_features`
//!   `[image_batch_size, image_tokens, hidden]`: the CLIP tower's hidden
//!   states at `vision_feature_layer` (a list is concatenated),
//!   `vision_feature_select_strategy` applied, through the two-layer
//!   projector; LLaVA-NeXT also returns its learned `image_newline`;
//! - `embed_tokens.onnx`: `input_ids` -> `inputs_embeds`;
//! - `decoder_model.onnx`: the language model (LLaMA architecture) taking
//!   `inputs_embeds` with the KV cache of [`super::decoder_io`].

use super::builder::{attr_int, Dim, GraphBuilder};
use super::clip::vision_states;
use super::layers::{feed_forward, weight_as_is};
use super::llama::{build_parts, LlamaParts};
use super::proto::{data_type, ModelProto};
use super::weights::Weights;
use super::OnnxError;
use ipfs_accelerate_models::llava::{LlavaConfig, SelectStrategy};

pub use ipfs_accelerate_models::llava::{MODEL_TYPE, NEXT_MODEL_TYPE};

/// The graph files, in order.
pub const GRAPHS: &[&str] = &[
    "vision_encoder.onnx",
    "embed_tokens.onnx",
    "decoder_model.onnx",
];

/// Where the checkpoint keeps its parts: transformers ≥ 4.52 nests them
/// under `model.`, older files have `language_model.model.` at the top.
struct Layout {
    root: &'static str,
    body: &'static str,
    head: &'static str,
}

fn layout(w: &Weights) -> Layout {
    if w.has("model.language_model.embed_tokens.weight") {
        Layout {
            root: "model.",
            body: "model.language_model.",
            head: "lm_head",
        }
    } else {
        Layout {
            root: "",
            body: "language_model.model.",
            head: "language_model.lm_head",
        }
    }
}

/// Builds the three graphs.
pub fn build(model: &str, cfg: &LlavaConfig, w: &Weights) -> Result<[ModelProto; 3], OnnxError> {
    let parts = layout(w);
    let layers = cfg
        .feature_layers()
        .map_err(|e| OnnxError::unsupported(model, e.to_string()))?;
    Ok([
        vision(cfg, w, &parts, &layers)?,
        embed_tokens(cfg, w, &parts)?,
        build_parts(
            model,
            &cfg.text_config,
            w,
            LlamaParts {
                body: parts.body,
                head: parts.head,
                embeds_input: true,
            },
        )?,
    ])
}

fn vision(
    cfg: &LlavaConfig,
    w: &Weights,
    parts: &Layout,
    layers: &[usize],
) -> Result<ModelProto, OnnxError> {
    let vc = &cfg.vision_config;
    let text_hidden = cfg.text_config.hidden_size;
    let mut g = GraphBuilder::new();
    let pixels = g.input(
        "pixel_values",
        data_type::FLOAT,
        &[
            Dim::named("image_batch_size"),
            Dim::Fixed(vc.num_channels as i64),
            Dim::Fixed(vc.image_size as i64),
            Dim::Fixed(vc.image_size as i64),
        ],
    );
    let deepest = layers.iter().copied().max().unwrap_or(0);
    let prefix = format!("{}vision_tower.vision_model", parts.root);
    let states = vision_states(&mut g, w, &prefix, vc, &pixels, deepest)?;
    g.set_scope("/multi_modal_projector");
    let selected: Vec<&str> = layers.iter().map(|&i| states[i].as_str()).collect();
    let mut features = if selected.len() == 1 {
        selected[0].to_owned()
    } else {
        g.op("Concat", &selected, vec![attr_int("axis", -1)])
    };
    if cfg.vision_feature_select_strategy == SelectStrategy::Default {
        // Drop the class position.
        let (start, end, axis) = (g.ints(&[1]), g.ints(&[i64::MAX]), g.ints(&[1]));
        features = g.op("Slice", &[&features, &start, &end, &axis], vec![]);
    }
    let projector = format!("{}multi_modal_projector", parts.root);
    let bias = cfg.multimodal_projector_bias;
    let width = vc.hidden_size * layers.len();
    let names = (
        format!("{projector}.linear_1"),
        format!("{projector}.linear_2"),
    );
    let x = feed_forward(
        &mut g,
        w,
        &features,
        (&names.0, &names.1),
        (width, text_hidden, text_hidden),
        (cfg.projector_hidden_act, bias),
    )?;
    g.set_scope("");
    g.output(
        &x,
        "image_features",
        data_type::FLOAT,
        &[
            Dim::named("image_batch_size"),
            Dim::named("image_tokens"),
            Dim::Fixed(text_hidden as i64),
        ],
    );
    if cfg.tiles_images() {
        let newline = weight_as_is(
            &mut g,
            w,
            &format!("{}image_newline", parts.root),
            &[text_hidden],
        )?;
        g.output(
            &newline,
            "image_newline",
            data_type::FLOAT,
            &[Dim::Fixed(text_hidden as i64)],
        );
    }
    Ok(g.finish(
        "llava_vision_encoder",
        "LLaVA vision tower and projector exported from safetensors by ipfs-accelerate",
    ))
}

fn embed_tokens(cfg: &LlavaConfig, w: &Weights, parts: &Layout) -> Result<ModelProto, OnnxError> {
    let (vocab, h) = (cfg.text_config.vocab_size, cfg.text_config.hidden_size);
    let mut g = GraphBuilder::new();
    let dims = [Dim::named("batch_size"), Dim::named("sequence_length")];
    let ids = g.input("input_ids", data_type::INT64, &dims);
    let table = weight_as_is(
        &mut g,
        w,
        &format!("{}embed_tokens.weight", parts.body),
        &[vocab, h],
    )?;
    let x = g.op("Gather", &[&table, &ids], vec![attr_int("axis", 0)]);
    g.output(
        &x,
        "inputs_embeds",
        data_type::FLOAT,
        &[
            Dim::named("batch_size"),
            Dim::named("sequence_length"),
            Dim::Fixed(h as i64),
        ],
    );
    Ok(g.finish(
        "llava_embed_tokens",
        "LLaVA token embeddings exported from safetensors by ipfs-accelerate",
    ))
}
