//! Write-through and the MFS name index: a model host A loads from the Hub
//! cache is also added to IPFS under its id, so host B (empty caches, Hub
//! offline) loads the same id from IPFS; a published snapshot is found by
//! id the same way.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ids unique to this run: the shared node outlives the test.
fn unique_id(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("it-{nanos}/{name}")
}

fn sources(answer: &serde_json::Value) -> Vec<String> {
    answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_model_loaded_from_the_hub_reaches_the_next_host_through_ipfs() {
    let test = "a_model_loaded_from_the_hub_reaches_the_next_host_through_ipfs";
    let Some(api) = ipfs_node::shared_api() else {
        skip(
            test,
            "no IPFS node answers (run `cargo xtask ipfs-node start`)",
        );
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = unique_id("bert");
    make_hub_cache(&a.path().join("hub"), &id, &fixture_model("bert"));
    let (texts, _) = bert_reference();

    let from_a = json_ok(&run(cli(a.path())
        .env("IPFS_API_URL", &api)
        .args(["embed", "--model", &id, "--json"])
        .args(&texts)));
    assert!(
        sources(&from_a).iter().all(|s| s == "hub_cache"),
        "{from_a}"
    );

    let from_b = json_ok(&run(cli(b.path())
        .env("IPFS_API_URL", &api)
        .args(["embed", "--model", &id, "--json"])
        .args(&texts)));
    assert!(sources(&from_b).iter().all(|s| s == "ipfs"), "{from_b}");
    assert_eq!(embeddings(&from_b), embeddings(&from_a));
    let ls = json_ok(&run(cli(b.path()).args(["cache", "ls", "--json"])));
    assert!(ls["stats"]["ipfs"]["hits"].as_u64().unwrap() >= 1, "{ls}");
    assert_eq!(ls["stats"]["hub"]["hits"], 0, "{ls}");
    let verify = json_ok(&run(cli(b.path()).args(["cache", "verify", "--json"])));
    assert_eq!(verify["ok"], true);
}

#[test]
fn a_published_snapshot_is_found_by_its_id() {
    let test = "a_published_snapshot_is_found_by_its_id";
    let Some(api) = ipfs_node::shared_api() else {
        skip(
            test,
            "no IPFS node answers (run `cargo xtask ipfs-node start`)",
        );
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = unique_id("bert");
    let published_id = format!("{id}@v1");
    json_ok(&run(cli(a.path())
        .args(["cache", "import", "--json", "--as", &published_id])
        .arg(fixture_model("bert"))));
    let published = json_ok(&run(cli(a.path()).env("IPFS_API_URL", &api).args([
        "cache",
        "publish",
        &published_id,
        "--json",
    ])));

    let (texts, reference) = bert_reference();
    let from_b = json_ok(&run(cli(b.path())
        .env("IPFS_API_URL", &api)
        .args(["embed", "--model", &published_id, "--json"])
        .args(&texts)));
    assert!(sources(&from_b).iter().all(|s| s == "ipfs"), "{from_b}");
    for (got, want) in embeddings(&from_b).iter().zip(&reference) {
        assert!(cosine(got, want) > 0.99999);
    }
    // What B fetched is A's files, CID for CID.
    let store = |home: &std::path::Path| {
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
    let err = one_line_failure(&run(cli(b.path()).env("IPFS_API_URL", &api).args([
        "embed",
        "--model",
        &format!("{id}@v2"),
        "--json",
        "x",
    ])));
    assert!(err.contains("name index"), "{err}");
}
