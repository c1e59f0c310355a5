//! The loader's resolution order and interception, through the library.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::gating::Gate;
use ipfs_accelerate::loader::{self, HubSettings};
use ipfs_accelerate::{FileKind, Layer, LoadError, Loader, ModelRef};
use ipfs_accelerate_tests::{fixture_model, loader_builder, make_hub_cache, model_ref};

fn offline() -> HubSettings {
    HubSettings {
        endpoint: "http://127.0.0.1:9".to_owned(),
        token: None,
        offline: true,
    }
}

fn allow() -> Gate {
    Gate::decide(Vec::<(String, String)>::new())
}

/// A loader over a temp cache, the given Hub cache, the Hub offline.
fn loader(home: &std::path::Path, hub: &std::path::Path, gate: Gate) -> Loader {
    loader_builder(home)
        .hub_cache_dir(hub)
        .hub(offline())
        .gate(gate)
        .build()
        .unwrap()
}

/// All interception states are process-wide, so the whole sequence runs in
/// one test (nextest gives each test its own process anyway).
#[test]
fn resolution_order_and_interception() {
    let home = tempfile::tempdir().unwrap();
    let hub = make_hub_cache(&home.path().join("hub"), "org/bert", &fixture_model("bert"));
    let loader = loader(home.path(), &hub, allow());
    let model = ModelRef::parse("org/bert").unwrap();

    // First use applies interception; the Hub cache serves and we store.
    let files = loader.from_pretrained(&model, FileKind::Tokenizer).unwrap();
    assert_eq!(files[0].file, "tokenizer.json");
    assert_eq!(files[0].source, Layer::HubCache);
    assert!(
        files[0].path.starts_with(home.path().join("cache")),
        "served from our store"
    );
    assert!(files.iter().any(|f| f.file == "tokenizer_config.json"));
    assert!(loader::status(loader.gate()).applied);

    // Second time: our cache.
    let again = loader.from_pretrained(&model, FileKind::Tokenizer).unwrap();
    assert_eq!(again[0].source, Layer::Cache);
    let bytes = std::fs::read(&again[0].path).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(fixture_model("bert").join("tokenizer.json")).unwrap()
    );

    // Restored: straight to the Hub cache, our cache not consulted.
    loader::restore();
    let plain = loader.from_pretrained(&model, FileKind::Config).unwrap();
    assert_eq!(plain[0].source, Layer::HubCache);
    assert!(plain[0].path.starts_with(&hub));
    let manifest = loader
        .store()
        .manifest("org/bert", "main")
        .unwrap()
        .unwrap();
    assert!(
        !manifest.files.iter().any(|f| f.path == "config.json"),
        "not written while restored"
    );

    // Applied again: config comes through storage.
    loader::apply();
    let stored = loader.from_pretrained(&model, FileKind::Config).unwrap();
    assert_eq!(stored[0].source, Layer::HubCache);
    assert!(stored[0].path.starts_with(home.path().join("cache")));

    // Snapshot by root CID once in our cache.
    let manifest = loader
        .store()
        .manifest("org/bert", "main")
        .unwrap()
        .unwrap();
    let by_cid = ModelRef::parse(&format!("ipfs://{}", manifest.root_cid)).unwrap();
    let cfg = loader.file(&by_cid, "config.json").unwrap();
    assert_eq!(cfg.source, Layer::Cache);

    // Missing everywhere: every place is named.
    let err = loader
        .from_pretrained(&model, FileKind::GenerationConfig)
        .unwrap_err();
    let LoadError::NotFound { tried, .. } = &err else {
        panic!("{err}")
    };
    // Our cache, the Hub cache, IPFS (in use or not, it says), the Hub.
    assert_eq!(tried.len(), 4, "{err}");
    assert!(tried[2].starts_with("IPFS"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("org/bert") && text.contains("generation_config.json"),
        "{text}"
    );
}

#[test]
fn gate_denial_means_plain_hub_loading() {
    let home = tempfile::tempdir().unwrap();
    let hub = make_hub_cache(&home.path().join("hub"), "org/bert", &fixture_model("bert"));
    let loader = loader(
        home.path(),
        &hub,
        Gate::decide([("TRANSFORMERS_PATCH_DISABLE", "1")]),
    );
    assert!(!loader.intercepting());
    let model = ModelRef::parse("org/bert").unwrap();
    let files = loader.from_pretrained(&model, FileKind::Weights).unwrap();
    assert_eq!(files[0].source, Layer::HubCache);
    assert!(files[0].path.starts_with(&hub));
    assert!(
        loader.store().manifests().unwrap().is_empty(),
        "our cache untouched"
    );
}

#[test]
fn local_folder_is_read_in_place() {
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path(), &home.path().join("hub"), allow());
    let dir = fixture_model("bert");
    let model = model_ref(&dir);
    let files = loader.from_pretrained(&model, FileKind::Weights).unwrap();
    assert_eq!(files[0].source, Layer::LocalFolder);
    assert_eq!(files[0].path, dir.join("model.safetensors"));
}

#[test]
fn imported_snapshot_is_complete() {
    let home = tempfile::tempdir().unwrap();
    // A Hub cache that *has* generation_config.json must not be consulted
    // for a file an imported snapshot lacks.
    let hub_model = home.path().join("hub-model");
    ipfs_accelerate_tests::copy_dir(&fixture_model("bert"), &hub_model).unwrap();
    std::fs::write(hub_model.join("generation_config.json"), "{}").unwrap();
    let hub = make_hub_cache(&home.path().join("hub"), "org/bert", &hub_model);
    let loader = loader(home.path(), &hub, allow());
    let manifest = loader
        .store()
        .import_dir(&fixture_model("bert"), "org/bert", "main")
        .unwrap();
    assert!(manifest.complete);
    let model = ModelRef::parse("org/bert").unwrap();
    let err = loader.file(&model, "generation_config.json").unwrap_err();
    let LoadError::NotFound { tried, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(tried.len(), 1, "{err}");
    assert!(tried[0].contains("imported snapshot"), "{err}");
    assert_eq!(
        loader.file(&model, "config.json").unwrap().source,
        Layer::Cache
    );
}
