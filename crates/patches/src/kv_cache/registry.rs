//! Cache layouts by cache type name: register, unregister, look up.

use super::CacheLayout;
use crate::{PatchInfo, PatchKind, VersionGate};
use std::collections::BTreeMap;
use std::sync::{OnceLock, RwLock};

/// Layouts keyed by cache type name.
#[derive(Debug, Clone, Default)]
pub struct CacheRegistry {
    layouts: BTreeMap<String, CacheLayout>,
}

impl CacheRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// `DynamicCache` and `EncoderDecoderCache`.
    pub fn with_builtin() -> Self {
        let mut registry = Self::new();
        registry.register(CacheLayout::dynamic());
        registry.register(CacheLayout::encoder_decoder());
        registry
    }

    /// Adds `layout` under its name; returns the layout it replaced.
    pub fn register(&mut self, layout: CacheLayout) -> Option<CacheLayout> {
        self.layouts.insert(layout.name().to_owned(), layout)
    }

    /// Removes the layout named `name`; returns it.
    pub fn unregister(&mut self, name: &str) -> Option<CacheLayout> {
        self.layouts.remove(name)
    }

    /// The layout named `name`.
    pub fn get(&self, name: &str) -> Option<&CacheLayout> {
        self.layouts.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.layouts.keys().map(String::as_str).collect()
    }

    /// One `patch list` row per layout.
    pub fn infos(&self) -> Vec<PatchInfo> {
        self.layouts
            .values()
            .map(|l| PatchInfo {
                name: format!("kv_cache.{}", l.name()),
                kind: PatchKind::CacheSerialization,
                target: format!(
                    "past_key_values.{{i}}.{{{c}}} / present.{{i}}.{{{c}}}",
                    c = l.components().join(",")
                ),
                gate: VersionGate::any(),
                description: format!("flattens {} to named tensors and back", l.name()),
                source: String::new(),
            })
            .collect()
    }
}

/// The process-wide registry, with the built-in layouts; lock it to
/// register or unregister.
pub fn global() -> &'static RwLock<CacheRegistry> {
    static GLOBAL: OnceLock<RwLock<CacheRegistry>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(CacheRegistry::with_builtin()))
}
