//! One file per command.

pub mod cache;
pub mod caption;
pub mod embed;
pub mod export;
pub mod generate;
pub mod patch;
pub mod serve;
pub mod similarity;
pub mod status;
pub mod text2text;
pub mod transcribe;
pub mod validate;
pub mod warm;

use ipfs_accelerate::{Loader, ModelRef};
use std::path::PathBuf;

/// Options every command shares.
#[derive(Debug)]
pub struct Context {
    pub json: bool,
    pub cache_dir: Option<PathBuf>,
    pub dump_rewriting: Option<PathBuf>,
    pub no_patches: bool,
    pub no_export: bool,
}

impl Context {
    /// A loader honouring `--cache-dir` over the environment.
    pub fn loader(&self) -> anyhow::Result<Loader> {
        let mut builder = Loader::builder();
        if let Some(dir) = &self.cache_dir {
            builder = builder.cache_dir(dir);
        }
        if let Some(dir) = &self.dump_rewriting {
            builder = builder.dump_rewriting(dir);
        }
        if self.no_export {
            builder = builder.export(false);
        }
        if self.no_patches {
            builder = builder.patches(false);
        }
        Ok(builder.build()?)
    }

    /// `model` (a folder, a Hub id or `ipfs://<cid>`) parsed, then a
    /// loader for it: what every command that runs one model starts with.
    pub fn model_and_loader(&self, model: &str) -> anyhow::Result<(ModelRef, Loader)> {
        let model = ModelRef::parse(model)?;
        Ok((model, self.loader()?))
    }
}
