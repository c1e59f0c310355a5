//! Sentence embeddings from BERT-family encoders (all-MiniLM-L6-v2 and the
//! like): tokenize with padding to the longest and truncation at the model's
//! `max_seq_length`, run the encoder in length-sorted batches, pool and
//! normalise as the sentence-transformers files say, return in input order.
//! The encoder runs on candle (safetensors) or, when the model ships
//! `onnx/model.onnx`, on ONNX Runtime / OpenVINO; pooling is shared.

mod onnx_encoder;

pub use ipfs_accelerate_models::pooling::{l2_normalize, Pooling};

use crate::load::graph_or_weights::load_graph_or_weights;
use crate::load::{skill_api, Loaded, ModelFiles};
use crate::{SkillError, SkillKind};
use candle_core::{DType, Device, Tensor};
use ipfs_accelerate_backends::BackendKind;
use ipfs_accelerate_models::bert::{Bert, BertConfig};
use onnx_encoder::OnnxEncoder;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// How a call to [`TextEmbedder::embed_with`] batches its texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Sort by token length before batching, so each batch pads little.
    pub sort_by_length: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            sort_by_length: true,
        }
    }
}

/// The encoder, on the backend that loaded it.
#[derive(Debug)]
enum Encoder {
    Candle { model: Box<Bert>, device: Device },
    Onnx(OnnxEncoder),
}

/// A loaded sentence-embedding model.
#[derive(Debug)]
pub struct TextEmbedder {
    loaded: Loaded,
    encoder: Encoder,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
    pad_id: u32,
}

skill_api!(
    TextEmbedder,
    SkillKind::TextEmbedding,
    "a text-embedding model"
);

impl TextEmbedder {
    /// The network and everything the task needs besides the opened
    /// files, on the first backend of the chain for `backend` that can hold
    /// it.
    fn from_files(mut files: ModelFiles<'_>, backend: BackendKind) -> Result<Self, SkillError> {
        let (loader, model) = (files.loader, files.model);
        let config: BertConfig = files.parse()?;
        let mut tokenizer = files.tokenizer()?;
        let st = loader.sentence_transformers::<Pooling>(model)?;
        files.files.extend(st.files.iter().cloned());
        let max_seq_length = st
            .max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        // The tokenizers crate subtracts the special tokens from the length
        // unchecked (it panics below them): a length that leaves no room
        // for one text token is a config error.
        let special = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        if max_seq_length <= special {
            return Err(files.malformed(
                "config.json",
                format!(
                    "a maximum length of {max_seq_length} tokens (max_position_embeddings / max_seq_length) leaves no room beside the {special} special tokens"
                ),
            ));
        }
        // tokenizer.json may pin padding/truncation (all-MiniLM-L6-v2 pads to
        // 128): we pad per batch ourselves and truncate at max_seq_length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|source| SkillError::Tokenizer {
                model: files.name.clone(),
                source,
            })?;
        let (encoder, kind, loaded_files) = load_graph_or_weights(
            &files,
            backend,
            |session| Ok(Encoder::Onnx(OnnxEncoder::new(session)?)),
            |vb, device| {
                let bert = Bert::load(vb, &config).map_err(|e| files.model_error(e))?;
                Ok(Encoder::Candle {
                    model: Box::new(bert),
                    device: device.clone(),
                })
            },
        )?;
        files.files.extend(loaded_files);
        Ok(Self {
            encoder,
            tokenizer,
            pooling: st.pooling.unwrap_or_default(),
            normalize: st.normalize,
            max_seq_length,
            pad_id: config.pad_token_id as u32,
            loaded: files.finish(kind),
        })
    }

    /// Tokens per text after truncation (special tokens included).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Embeds with the default options (batches of 32, length-sorted).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SkillError> {
        self.embed_with(texts, EmbedOptions::default())
    }

    /// Embeds `texts`, returning one vector per text in input order.
    pub fn embed_with(
        &self,
        texts: &[&str],
        options: EmbedOptions,
    ) -> Result<Vec<Vec<f32>>, SkillError> {
        Ok(self.embed_with_usage(texts, options)?.0)
    }

    /// Like [`Self::embed_with`], also returning each text's token count
    /// (after truncation, special tokens included).
    pub fn embed_with_usage(
        &self,
        texts: &[&str],
        options: EmbedOptions,
    ) -> Result<(Vec<Vec<f32>>, Vec<usize>), SkillError> {
        if texts.is_empty() {
            return Err(SkillError::InvalidInput("no texts to embed".to_owned()));
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| SkillError::Tokenizer {
                model: self.loaded.name.clone(),
                source: e,
            })?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        if options.sort_by_length {
            // Longest first: the biggest batch is built (and fails) first.
            order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        }
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(options.batch_size.max(1)) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.forward(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok((out, encodings.iter().map(Encoding::len).collect()))
    }

    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, SkillError> {
        let seq = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let rows = batch.len();
        let mut ids = Vec::with_capacity(rows * seq);
        let mut types = Vec::with_capacity(rows * seq);
        let mut mask = Vec::with_capacity(rows * seq);
        for e in batch {
            let pad = seq - e.len();
            ids.extend(
                e.get_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(self.pad_id, pad)),
            );
            types.extend(
                e.get_type_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, pad)),
            );
            mask.extend(
                e.get_attention_mask()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, pad)),
            );
        }
        let (hidden, mask) = match &self.encoder {
            Encoder::Candle { model, device } => {
                let ids = Tensor::from_vec(ids, (rows, seq), device)?;
                let types = Tensor::from_vec(types, (rows, seq), device)?;
                let mask = Tensor::from_vec(mask, (rows, seq), device)?;
                (model.forward(&ids, &types, Some(&mask))?, mask)
            }
            Encoder::Onnx(encoder) => {
                let hidden = encoder.forward((rows, seq), &ids, &types, &mask)?;
                (hidden, Tensor::from_vec(mask, (rows, seq), &Device::Cpu)?)
            }
        };
        let mut pooled = self.pooling.apply(&hidden, &mask)?;
        if self.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_dtype(DType::F32)?.to_vec2()?)
    }
}
