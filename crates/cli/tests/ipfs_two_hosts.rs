//! Two hosts sharing a model over a real IPFS node: host A imports the bert
//! fixture and publishes it; host B, with an empty cache and no Hub, loads
//! `ipfs://<root>` and embeds exactly as A does. Two cache roots on one
//! machine stand for the two hosts.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate::storage::{self, CidVersion, Store};
use std::path::Path;

/// A host of the shared node: the binary in `home`, talking to `api`.
fn host(api: &str, home: &Path) -> std::process::Command {
    with_ipfs(cli(home), api)
}

#[test]
fn host_b_loads_by_cid_what_host_a_published() {
    let test = "host_b_loads_by_cid_what_host_a_published";
    let Some((api, [a, b])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    let model = fixture_model("bert");

    // Host A: import, publish.
    let imported = cache_import(host(&api, a.path()), "fixtures/bert", &model);
    let published = cache(host(&api, a.path()), &["publish", "fixtures/bert"]);
    let root = published["root_cid"].as_str().unwrap().to_owned();

    // One root CID three ways: our import, our local computation, and the
    // node's own answer for the same folder added independently.
    assert_eq!(imported["root_cid"], root.as_str());
    let local = storage::path_cid(&model, CidVersion::V0).unwrap();
    assert_eq!(local.cid.to_string(), root);
    let client = storage::IpfsClient::new(&api, std::time::Duration::from_secs(30));
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
    let pinned = cache(host(&api, a.path()), &["pin", "fixtures/bert"]);
    assert_eq!(pinned["ipfs_pinned"], true, "{pinned}");

    // Host A embeds from its cache.
    let (texts, reference) = bert_reference();
    let from_a = embeddings(&embed(host(&api, a.path()), "fixtures/bert", &texts, &[]));

    // Host B: empty cache, Hub offline, only the CID.
    let model_ref = format!("ipfs://{root}");
    let from_b = embeddings(&embed(host(&api, b.path()), &model_ref, &texts, &[]));
    assert_eq!(from_b, from_a, "same embeddings");
    for (got, want) in from_b.iter().zip(&reference) {
        assert!(cosine(got, want) > 0.99999);
    }
    let ls = cache(host(&api, b.path()), &["ls"]);
    assert_eq!(ls["models"][0]["root_cid"], root.as_str());
    let ipfs_hits = ls["stats"]["ipfs"]["hits"].as_u64().unwrap();
    assert!(ipfs_hits >= 1, "{ls}");
    assert!(ls["stats"]["hub"]["hits"] == 0, "{ls}");

    // Host B again: now served by its own cache, the node is not needed.
    let again = embeddings(&embed(cli(b.path()), &model_ref, &texts, &[]));
    assert_eq!(again, from_a);
    let ls = cache(cli(b.path()), &["ls"]);
    assert_eq!(ls["stats"]["ipfs"]["hits"].as_u64().unwrap(), ipfs_hits);
    let verify = cache(cli(b.path()), &["verify"]);
    assert_eq!(verify["ok"], true);
}

#[test]
fn pull_by_cid_fills_an_empty_cache() {
    let Some((api, [a, b])) = ipfs_node::node_and_hosts("pull_by_cid_fills_an_empty_cache") else {
        return;
    };
    let a_host = ipfs_node::publish_fixture(&api, a.path(), "bert", "fixtures/bert");
    let (manifest, root) = (&a_host.manifest, &a_host.root);

    let pulled = cache(
        host(&api, b.path()),
        &["pull", root, "--as", "mirror/bert@v1"],
    );
    assert_eq!(pulled["id"], "mirror/bert");
    assert_eq!(pulled["revision"], "v1");
    assert_eq!(pulled["root_cid"], root.as_str());
    let files: Vec<storage::ManifestFile> =
        serde_json::from_value(pulled["files"].clone()).unwrap();
    assert_eq!(files, manifest.files);
    let verify = cache(cli(b.path()), &["verify"]);
    assert_eq!(verify["ok"], true);
    // Blobs are counted once however many files share them.
    let distinct: std::collections::BTreeSet<&str> =
        manifest.files.iter().map(|f| f.sha256.as_str()).collect();
    assert_eq!(verify["checked"], distinct.len());

    // A CIDv1 of the same root names the same snapshot.
    let v1 = storage::unixfs::parse_cid(root)
        .unwrap()
        .into_v1()
        .unwrap()
        .to_string();
    let again = cache(
        host(&api, b.path()),
        &["pull", &v1, "--as", "mirror/bert@v2"],
    );
    assert_eq!(again["root_cid"], root.as_str());

    // `cache warm ipfs://CID` on a third host pulls the whole snapshot.
    let c = tempfile::tempdir().unwrap();
    let warm = cache(host(&api, c.path()), &["warm", &format!("ipfs://{root}")]);
    assert!(
        warm["models"][0]["sources"]["ipfs"].as_u64().unwrap() >= 1,
        "{warm}"
    );
    let ls = cache(cli(c.path()), &["ls"]);
    assert_eq!(ls["models"][0]["root_cid"], root.as_str());
    assert_eq!(ls["models"][0]["files"], manifest.files.len());
}

#[test]
fn bad_cids_and_unknown_models_are_one_line_errors() {
    let test = "bad_cids_and_unknown_models_are_one_line_errors";
    let Some((api, [home])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    let cache_fails = |args: &[&str]| {
        failure(
            host(&api, home.path())
                .arg("cache")
                .args(args)
                .arg("--json"),
        )
    };
    let err = cache_fails(&["pull", "not-a-cid", "--as", "a/b"]);
    assert!(err.contains("not a CID"), "{err}");
    let err = cache_fails(&["publish", "no/such-model"]);
    assert!(err.contains("not in the cache"), "{err}");
}

/// An ONNX graph exported on first use travels with its model: host A
/// exports on its first `--backend ort` load and `cache publish` shares the
/// export beside the model; host B pulls both by CID and runs on ONNX
/// Runtime from A's graph, exporting nothing.
#[test]
fn an_onnx_export_travels_with_its_model() {
    let test = "an_onnx_export_travels_with_its_model";
    let Some((api, [a, b])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    let plain = a.path().join("gpt2-without-onnx");
    copy_dir(&fixture_model("gpt2"), &plain).unwrap();
    std::fs::remove_dir_all(plain.join("onnx")).unwrap();
    let id = "fixtures/gpt2-plain";
    cache_import(host(&api, a.path()), id, &plain);
    let r = reference("gpt2");
    let prompt = r["inputs"]["prompt"].as_str().unwrap();
    let want = id_list(&r["prompt"]["token_ids"]);
    let generate = |home: &Path| {
        let mut cmd = with_ort(host(&api, home), test, false)?;
        Some(json_of(
            cmd.args(["generate", "--json", "--greedy", "--max-new-tokens", "12"])
                .args(["--backend", "ort", "--model", id, prompt]),
        ))
    };
    let Some(on_a) = generate(a.path()) else {
        return;
    };
    assert_eq!(id_list(&on_a["token_ids"]), want);
    let graph = |answer: &serde_json::Value| {
        answer["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"] == "onnx/model.onnx")
            .map(|f| f["source"].as_str().unwrap().to_owned())
    };
    assert_eq!(graph(&on_a).as_deref(), Some("export"));

    let published = cache(host(&api, a.path()), &["publish", id]);
    let exports = published["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 1, "{published}");
    let (key, export_root) = (
        exports[0]["revision"].as_str().unwrap(),
        exports[0]["root_cid"].as_str().unwrap(),
    );
    let model_root = published["root_cid"].as_str().unwrap();

    // Host B: the model and its export, both by CID.
    cache(host(&api, b.path()), &["pull", model_root, "--as", id]);
    let export_id = format!("onnx-export@{key}");
    cache(
        host(&api, b.path()),
        &["pull", export_root, "--as", &export_id],
    );
    let on_b = generate(b.path()).unwrap();
    assert_eq!(id_list(&on_b["token_ids"]), want);
    assert_eq!(graph(&on_b).as_deref(), Some("cache"), "{on_b}");
    let ls = cache(cli(b.path()), &["ls"]);
    assert_eq!(ls["stats"]["export"]["hits"], 0, "B exported nothing: {ls}");
}
