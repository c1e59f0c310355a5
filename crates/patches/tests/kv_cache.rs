//! KV-cache flatten/unflatten and the layout registry.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate_patches::kv_cache::{global, CacheIo, CacheLayout, CacheRegistry, F32Tensor};

fn t(v: f32) -> F32Tensor {
    F32Tensor::new(vec![1, 1, 1, 2], vec![v, v + 0.5]).unwrap()
}

#[test]
fn dynamic_cache_round_trips_through_names() {
    let layout = CacheRegistry::with_builtin()
        .get("DynamicCache")
        .cloned()
        .unwrap();
    let pairs = vec![(t(0.0), t(1.0)), (t(2.0), t(3.0))];
    let named = layout.flatten_pairs(CacheIo::Past, pairs.clone()).unwrap();
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "past_key_values.0.key",
            "past_key_values.0.value",
            "past_key_values.1.key",
            "past_key_values.1.value"
        ]
    );
    assert_eq!(names, layout.names(CacheIo::Past, 2));
    // Order of the named tensors does not matter.
    let mut shuffled = named;
    shuffled.reverse();
    assert_eq!(
        layout.unflatten_pairs(CacheIo::Past, shuffled).unwrap(),
        pairs
    );

    let present = layout
        .flatten_pairs(CacheIo::Present, pairs.clone())
        .unwrap();
    assert_eq!(present[3].0, "present.1.value");
    assert_eq!(
        layout.unflatten_pairs(CacheIo::Present, present).unwrap(),
        pairs
    );
}

#[test]
fn refuses_incomplete_or_foreign_names() {
    let layout = CacheLayout::dynamic();
    let named = layout
        .flatten_pairs(CacheIo::Past, vec![(t(0.0), t(1.0))])
        .unwrap();
    // Past names read as present ones: missing.
    let err = layout
        .unflatten_pairs(CacheIo::Present, named.clone())
        .unwrap_err();
    assert!(
        err.to_string().contains("present.0.key is missing"),
        "{err}"
    );
    let mut odd = named.clone();
    odd.pop();
    assert!(layout.unflatten_pairs(CacheIo::Past, odd).is_err());
    let mut twice = named.clone();
    twice[1].0 = twice[0].0.clone();
    assert!(layout
        .unflatten_pairs(CacheIo::Past, twice)
        .unwrap_err()
        .to_string()
        .contains("twice"));
    assert!(layout.flatten(CacheIo::Past, vec![vec![t(0.0)]]).is_err());
    assert!(F32Tensor::new(vec![2, 2], vec![1.0]).is_err());
}

#[test]
fn encoder_decoder_layers_hold_four_tensors() {
    let layout = CacheLayout::encoder_decoder();
    let named = layout
        .flatten(CacheIo::Past, vec![vec![t(0.0), t(1.0), t(2.0), t(3.0)]])
        .unwrap();
    assert_eq!(named[2].0, "past_key_values.0.encoder.key");
    let layers = layout.unflatten(CacheIo::Past, named).unwrap();
    assert_eq!(layers[0][3], t(3.0));
    assert!(layout
        .unflatten_pairs(CacheIo::Past, Vec::<(String, F32Tensor)>::new())
        .is_err());
}

#[test]
fn register_and_unregister() {
    let mut registry = CacheRegistry::new();
    assert!(registry
        .register(CacheLayout::new("MlaCache", &["compressed_kv", "k_pe"]))
        .is_none());
    assert_eq!(registry.names(), ["MlaCache"]);
    let named = registry
        .get("MlaCache")
        .unwrap()
        .flatten(CacheIo::Present, vec![vec![1, 2]])
        .unwrap();
    assert_eq!(named[1], ("present.0.k_pe".to_owned(), 2));
    assert!(registry.unregister("MlaCache").is_some());
    assert!(registry.get("MlaCache").is_none());

    let mut g = global().write().unwrap();
    assert!(g.get("DynamicCache").is_some());
    g.register(CacheLayout::new("TestCache", &["k", "v"]));
    assert!(g.names().contains(&"TestCache"));
    g.unregister("TestCache");
}
