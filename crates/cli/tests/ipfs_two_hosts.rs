//! Two hosts sharing a model over a real IPFS node: host A imports the bert
//! fixture and publishes it; host B, with an empty cache and no Hub, loads
//! `ipfs://<root>` and embeds exactly as A does. Two cache roots on one
//! machine stand for the two hosts.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate::storage::{self, ipfs::publish, CidVersion, IpfsClient, Store};
use std::time::Duration;

/// The shared node (`cargo xtask ipfs-node start`), or a printed skip.
fn node(test: &str) -> Option<String> {
    let api = ipfs_node::shared_api();
    if api.is_none() {
        skip(
            test,
            "no IPFS node answers (run `cargo xtask ipfs-node start` or set IPFS_API_URL)",
        );
    }
    api
}

fn host(api: &str, home: &std::path::Path) -> std::process::Command {
    let mut cmd = cli(home);
    cmd.env("IPFS_API_URL", api);
    cmd
}

#[test]
fn host_b_loads_by_cid_what_host_a_published() {
    let Some(api) = node("host_b_loads_by_cid_what_host_a_published") else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let model = fixture_model("bert");

    // Host A: import, publish.
    let imported = json_ok(&run(host(&api, a.path())
        .args(["cache", "import", "--json", "--as", "fixtures/bert"])
        .arg(&model)));
    let published = json_ok(&run(host(&api, a.path()).args([
        "cache",
        "publish",
        "fixtures/bert",
        "--json",
    ])));
    let root = published["root_cid"].as_str().unwrap().to_owned();

    // One root CID three ways: our import, our local computation, and the
    // node's own answer for the same folder added independently.
    assert_eq!(imported["root_cid"], root.as_str());
    let local = storage::path_cid(&model, CidVersion::V0).unwrap();
    assert_eq!(local.cid.to_string(), root);
    let client = IpfsClient::new(&api, Duration::from_secs(30));
    let files = storage::unixfs::walk_files(&model).unwrap();
    let added = client.add_dir("bert", &files, false).unwrap();
    let node_root = added.iter().find(|e| e.name == "bert").unwrap();
    assert_eq!(node_root.hash, root, "the node's CID for the folder");
    // Every file's CID too, as the node reports it.
    let manifest = Store::open(a.path().join("cache"))
        .unwrap()
        .manifest("fixtures/bert", "main")
        .unwrap()
        .unwrap();
    for f in &manifest.files {
        let name = format!("bert/{}", f.path);
        let entry = added.iter().find(|e| e.name == name).unwrap();
        assert_eq!(entry.hash, f.cid, "{}", f.path);
    }
    assert!(client.is_pinned(&root).unwrap(), "publish pins the root");
    let pinned = json_ok(&run(host(&api, a.path()).args([
        "cache",
        "pin",
        "fixtures/bert",
        "--json",
    ])));
    assert_eq!(pinned["ipfs_pinned"], true, "{pinned}");

    // Host A embeds from its cache.
    let (texts, reference) = bert_reference();
    let from_a = json_ok(&run(host(&api, a.path())
        .args(["embed", "--model", "fixtures/bert", "--json"])
        .args(&texts)));

    // Host B: empty cache, Hub offline, only the CID.
    let model_ref = format!("ipfs://{root}");
    let from_b = json_ok(&run(host(&api, b.path())
        .args(["embed", "--model", &model_ref, "--json"])
        .args(&texts)));
    assert_eq!(embeddings(&from_b), embeddings(&from_a), "same embeddings");
    for (got, want) in embeddings(&from_b).iter().zip(&reference) {
        assert!(cosine(got, want) > 0.99999);
    }
    let ls = json_ok(&run(host(&api, b.path()).args(["cache", "ls", "--json"])));
    assert_eq!(ls["models"][0]["root_cid"], root.as_str());
    let ipfs_hits = ls["stats"]["ipfs"]["hits"].as_u64().unwrap();
    assert!(ipfs_hits >= 1, "{ls}");
    assert!(ls["stats"]["hub"]["hits"] == 0, "{ls}");

    // Host B again: now served by its own cache, the node is not needed.
    let again = json_ok(&run(cli(b.path())
        .args(["embed", "--model", &model_ref, "--json"])
        .args(&texts)));
    assert_eq!(embeddings(&again), embeddings(&from_a));
    let ls = json_ok(&run(cli(b.path()).args(["cache", "ls", "--json"])));
    assert_eq!(ls["stats"]["ipfs"]["hits"].as_u64().unwrap(), ipfs_hits);
    let verify = json_ok(&run(cli(b.path()).args(["cache", "verify", "--json"])));
    assert_eq!(verify["ok"], true);
}

#[test]
fn pull_by_cid_fills_an_empty_cache() {
    let Some(api) = node("pull_by_cid_fills_an_empty_cache") else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_a = Store::open(a.path()).unwrap();
    let manifest = store_a
        .import_dir(&fixture_model("bert"), "fixtures/bert", "main")
        .unwrap();
    let client = IpfsClient::new(&api, Duration::from_secs(30));
    let root = publish(&store_a, &client, &manifest).unwrap();

    let pulled = json_ok(&run(host(&api, b.path()).args([
        "cache",
        "pull",
        &root,
        "--as",
        "mirror/bert@v1",
        "--json",
    ])));
    assert_eq!(pulled["id"], "mirror/bert");
    assert_eq!(pulled["revision"], "v1");
    assert_eq!(pulled["root_cid"], root.as_str());
    let files: Vec<storage::ManifestFile> =
        serde_json::from_value(pulled["files"].clone()).unwrap();
    assert_eq!(files, manifest.files);
    let verify = json_ok(&run(cli(b.path()).args(["cache", "verify", "--json"])));
    assert_eq!(verify["ok"], true);
    // Blobs are counted once however many files share them.
    let distinct: std::collections::BTreeSet<&str> =
        manifest.files.iter().map(|f| f.sha256.as_str()).collect();
    assert_eq!(verify["checked"], distinct.len());

    // A CIDv1 of the same root names the same snapshot.
    let v1 = storage::unixfs::parse_cid(&root)
        .unwrap()
        .into_v1()
        .unwrap()
        .to_string();
    let again = json_ok(&run(host(&api, b.path()).args([
        "cache",
        "pull",
        &v1,
        "--as",
        "mirror/bert@v2",
        "--json",
    ])));
    assert_eq!(again["root_cid"], root.as_str());

    // `cache warm ipfs://CID` on a third host pulls the whole snapshot.
    let c = tempfile::tempdir().unwrap();
    let warm = json_ok(&run(host(&api, c.path()).args([
        "cache",
        "warm",
        &format!("ipfs://{root}"),
        "--json",
    ])));
    assert!(
        warm["models"][0]["sources"]["ipfs"].as_u64().unwrap() >= 1,
        "{warm}"
    );
    let ls = json_ok(&run(cli(c.path()).args(["cache", "ls", "--json"])));
    assert_eq!(ls["models"][0]["root_cid"], root.as_str());
    assert_eq!(ls["models"][0]["files"], manifest.files.len());
}

#[test]
fn bad_cids_and_unknown_models_are_one_line_errors() {
    let Some(api) = node("bad_cids_and_unknown_models_are_one_line_errors") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let err = one_line_failure(&run(host(&api, home.path()).args([
        "cache",
        "pull",
        "not-a-cid",
        "--as",
        "a/b",
        "--json",
    ])));
    assert!(err.contains("not a CID"), "{err}");
    let err = one_line_failure(&run(host(&api, home.path()).args([
        "cache",
        "publish",
        "no/such-model",
        "--json",
    ])));
    assert!(err.contains("not in the cache"), "{err}");
}
