//! The library as the cross-crate tests build it: loaders over a temp
//! cache, model references to fixture folders.

use ipfs_accelerate::gating::Gate;
use ipfs_accelerate::loader::LoaderBuilder;
use ipfs_accelerate::{Loader, ModelRef};
use std::path::Path;

/// A loader builder over a temp home: our cache at `home/cache`, the Hub
/// cache at `home/hub`, the Hub offline. Anything set afterwards wins.
pub fn loader_builder(home: &Path) -> LoaderBuilder {
    Loader::builder()
        .cache_dir(home.join("cache"))
        .hub_cache_dir(home.join("hub"))
        .gate(Gate::decide([("HF_HUB_OFFLINE", "1")]))
}

/// [`loader_builder`], built.
pub fn loader(home: &Path) -> Loader {
    loader_builder(home).build().expect("the loader opens")
}

/// A reference to the model folder `dir`.
pub fn model_ref(dir: &Path) -> ModelRef {
    let path = dir.to_str().expect("UTF-8 path");
    ModelRef::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A reference to the shared fixture `name`.
pub fn fixture_ref(name: &str) -> ModelRef {
    model_ref(&crate::fixture_model(name))
}
