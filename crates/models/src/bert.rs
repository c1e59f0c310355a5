//! BERT-family encoders (all-MiniLM-L6-v2 and the like): candle-transformers'
//! BERT, which matches transformers' `BertModel`; re-exported here so every
//! family is found in this crate.

pub use candle_transformers::models::bert::{BertModel, Config as BertConfig};
