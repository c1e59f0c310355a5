//! Write-through and the MFS name index: a model host A loads from the Hub
//! cache is also added to IPFS under its id, so host B (empty caches, Hub
//! offline) loads the same id from IPFS; a published snapshot is found by
//! id the same way.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ids unique to this run: the shared node outlives the test.
fn unique_id(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("it-{nanos}/{name}")
}

/// `embed` of `texts` with model `id` on host `home` of the node `api`;
/// asserts every file came from `source`.
fn embed_from(api: &str, home: &Path, id: &str, texts: &[String], source: &str) -> Vec<Vec<f32>> {
    let answer = embed(with_ipfs(cli(home), api), id, texts, &[]);
    let sources = pluck(&answer["files"], "source");
    assert!(sources.iter().all(|s| s == source), "{answer}");
    embeddings(&answer)
}

#[test]
fn a_model_loaded_from_the_hub_reaches_the_next_host_through_ipfs() {
    let test = "a_model_loaded_from_the_hub_reaches_the_next_host_through_ipfs";
    let Some((api, [a, b])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    let id = unique_id("bert");
    make_hub_cache(&a.path().join("hub"), &id, &fixture_model("bert"));
    let (texts, _) = bert_reference();

    let from_a = embed_from(&api, a.path(), &id, &texts, "hub_cache");
    let from_b = embed_from(&api, b.path(), &id, &texts, "ipfs");
    assert_eq!(from_b, from_a);
    let ls = cache(cli(b.path()), &["ls"]);
    assert!(ls["stats"]["ipfs"]["hits"].as_u64().unwrap() >= 1, "{ls}");
    assert_eq!(ls["stats"]["hub"]["hits"], 0, "{ls}");
    let verify = cache(cli(b.path()), &["verify"]);
    assert_eq!(verify["ok"], true);
}

#[test]
fn a_published_snapshot_is_found_by_its_id() {
    let test = "a_published_snapshot_is_found_by_its_id";
    let Some((api, [a, b])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    let id = unique_id("bert");
    let published_id = format!("{id}@v1");
    cache_import(cli(a.path()), &published_id, &fixture_model("bert"));
    let published = cache(with_ipfs(cli(a.path()), &api), &["publish", &published_id]);

    let (texts, reference) = bert_reference();
    let from_b = embed_from(&api, b.path(), &published_id, &texts, "ipfs");
    for (got, want) in from_b.iter().zip(&reference) {
        assert!(cosine(got, want) > 0.99999);
    }
    // What B fetched is A's files, CID for CID.
    let store = |home: &Path| {
        ipfs_accelerate::Store::open(home.join("cache"))
            .unwrap()
            .manifest(&id, "v1")
            .unwrap()
            .unwrap()
    };
    let (on_a, on_b) = (store(a.path()), store(b.path()));
    assert_eq!(on_a.root_cid, published["root_cid"].as_str().unwrap());
    assert!(!on_b.files.is_empty());
    for f in &on_b.files {
        assert_eq!(on_a.file(&f.path), Some(f), "{}", f.path);
    }
    // Another revision is not in the index: the Hub (offline) is next.
    let other = format!("{id}@v2");
    let err = failure_of(
        with_ipfs(cli(b.path()), &api),
        "embed",
        Path::new(&other),
        &["x"],
    );
    assert!(err.contains("name index"), "{err}");
}
