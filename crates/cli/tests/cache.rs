//! `cache import | ls | verify`, verified reads, and two processes at once.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// The binary in `home`, loading through our cache even where the gate
/// would not intercept (CI).
fn intercepting(home: &Path) -> std::process::Command {
    let mut cmd = cli(home);
    cmd.env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1");
    cmd
}

fn blobs(home: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(home.join("cache/blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn import_ls_and_root_cid() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("bert");
    let answer = cache_import(cli(home.path()), "fixtures/bert", &model);
    assert_eq!(answer["id"], "fixtures/bert");
    let files = answer["files"].as_array().unwrap();
    let on_disk = walk(&model);
    assert_eq!(files.len(), on_disk, "every file imported");
    for f in files {
        let path = model.join(f["path"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(f["size"], bytes.len() as u64);
        use sha2::Digest;
        assert_eq!(f["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    }
    // The root CID is what `ipfs add -r` gives the same folder.
    let expected =
        ipfs_accelerate::storage::path_cid(&model, ipfs_accelerate::storage::CidVersion::V0)
            .unwrap();
    assert_eq!(answer["root_cid"], expected.cid.to_string());

    let ls = cache(cli(home.path()), &["ls"]);
    let models = ls["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["id"], "fixtures/bert");
    assert_eq!(models[0]["revision"], "main");
    assert_eq!(models[0]["root_cid"], answer["root_cid"]);
    assert_eq!(models[0]["files"], files.len());
    assert!(ls["stats"].is_object());

    // Loading by id serves every file from the cache and counts the hits.
    let out = embed(intercepting(home.path()), "fixtures/bert", &["hello"], &[]);
    assert!(pluck(&out["files"], "source").iter().all(|s| s == "cache"));
    let ls = cache(cli(home.path()), &["ls"]);
    assert!(
        ls["stats"]["cache"]["hits"].as_u64().unwrap() >= 3,
        "{}",
        ls["stats"]
    );
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p)
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn flipped_byte_is_detected_and_never_served() {
    let home = tempfile::tempdir().unwrap();
    cache_import(cli(home.path()), "fixtures/bert", &fixture_model("bert"));
    let clean = cache(cli(home.path()), &["verify"]);
    assert_eq!(clean["ok"], true);

    // Corrupt the weights blob.
    let weights = std::fs::read(fixture_model("bert").join("model.safetensors")).unwrap();
    use sha2::Digest;
    let blob = home
        .path()
        .join("cache/blobs")
        .join(hex::encode(sha2::Sha256::digest(&weights)));
    assert!(blob.is_file(), "blobs are named by sha256");
    flip_a_byte(&blob);

    let report = cache(cli(home.path()), &["verify"]);
    assert_eq!(report["ok"], false);
    let corrupt: Vec<&str> = report["corrupt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(corrupt.len(), 1, "{report}");
    assert!(corrupt[0].ends_with(blob.file_name().unwrap().to_str().unwrap()));
    assert!(report["checked"].as_u64().unwrap() >= 10);
    let strict = run(cli(home.path()).args(["cache", "verify", "--strict"]));
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("error: cache verification failed"));

    // Loading refuses the corrupt blob: no other source has it here.
    let bert = Path::new("fixtures/bert");
    let line = failure_of(intercepting(home.path()), "embed", bert, &["hello"]);
    assert!(line.contains("model.safetensors"), "{line}");

    // With the Hub cache holding the file, the load repairs the cache.
    make_hub_cache(
        &home.path().join("hub"),
        "fixtures/bert",
        &fixture_model("bert"),
    );
    let answer = embed(intercepting(home.path()), bert, &["hello"], &[]);
    let weights_source = answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "model.safetensors")
        .unwrap()["source"]
        .clone();
    assert_eq!(weights_source, "hub_cache");
    let report = cache(cli(home.path()), &["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn two_processes_load_one_uncached_model() {
    let home = tempfile::tempdir().unwrap();
    let id = "fixtures/bert";
    make_hub_cache(&home.path().join("hub"), id, &fixture_model("bert"));
    let (texts, expected) = bert_reference();
    let spawn = || {
        intercepting(home.path())
            .args(["embed", "--json", "--model", id])
            .args(&texts)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..3).map(|_| spawn()).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert_cosines("embeddings", &embeddings(&json_ok(out)), &expected, 0.99999);
    }
    // One copy of each file, nothing half-written left behind.
    let files = walk(&fixture_model("bert"));
    let stored = blobs(home.path());
    let manifest = cache(cli(home.path()), &["ls"]);
    let model = &manifest["models"][0];
    assert_eq!(manifest["models"].as_array().unwrap().len(), 1);
    let loaded = model["files"].as_u64().unwrap() as usize;
    assert!(loaded <= files && loaded >= 4, "{model}");
    assert_eq!(stored.len(), loaded, "one blob per loaded file: {stored:?}");
    let tmp = std::fs::read_dir(home.path().join("cache/tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "no temp files left");
}
