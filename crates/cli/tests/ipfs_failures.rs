//! The IPFS layer when things go wrong: a node killed mid-pull, and bytes
//! that do not match their CID. The cache never holds a partial or wrong
//! file.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate::storage::{
    ipfs::{fetch_file, publish},
    IpfsClient, StorageError, Store,
};
use std::time::{Duration, Instant};

#[test]
fn killing_the_node_mid_pull_leaves_no_partial_file_and_a_retry_succeeds() {
    let test = "killing_the_node_mid_pull_leaves_no_partial_file_and_a_retry_succeeds";
    let install = ipfs_node::node_dir();
    if !ipfs_node::is_installed(&install) {
        skip(
            test,
            "no IPFS node installed (run `cargo xtask ipfs-node start`)",
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // A node of our own: killing the shared one would break other tests.
    let start = |n: u32| {
        ipfs_node::Daemon::start(
            &install,
            &work.path().join(format!("repo{n}")),
            &work.path().join(format!("daemon{n}.log")),
            Duration::from_secs(120),
        )
        .unwrap()
    };
    let mut daemon = start(1);
    let model = ipfs_node::incompressible_model(work.path(), 48);
    let a = tempfile::tempdir().unwrap();
    let store_a = Store::open(a.path()).unwrap();
    let manifest = store_a.import_dir(&model, "org/big", "main").unwrap();
    let client = IpfsClient::new(daemon.api(), Duration::from_secs(60));
    let root = publish(&store_a, &client, &manifest).unwrap();

    let b = tempfile::tempdir().unwrap();
    let mut pull = cli(b.path())
        .env("IPFS_API_URL", daemon.api())
        .env("IPFS_ACCELERATE_IPFS_TIMEOUT", "5")
        .args(["cache", "pull", &root, "--as", "org/big", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the node once bytes are arriving into a temp file.
    let tmp = b.path().join("cache/tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    while entries(&tmp).is_empty() {
        assert!(Instant::now() < deadline, "the pull never started writing");
        assert!(
            pull.try_wait().unwrap().is_none(),
            "pull ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed_at = Instant::now();
    daemon.kill();
    let out = pull.wait_with_output().unwrap();
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "failed within the timeout: {took:?}"
    );
    let err = one_line_failure(&out);
    assert!(err.contains("cannot pull"), "{err}");
    // Nothing partial: no temp file, no blob of the big file, no manifest.
    assert!(
        entries(&tmp).is_empty(),
        "temp files left: {:?}",
        entries(&tmp)
    );
    let store_b = Store::open(b.path().join("cache")).unwrap();
    let weights = manifest.file("model.safetensors").unwrap();
    assert!(!store_b.has(&weights.sha256));
    assert!(store_b.manifests().unwrap().is_empty());
    for blob in entries(&b.path().join("cache/blobs")) {
        assert!(manifest.files.iter().any(|f| f.sha256 == blob), "{blob}");
    }

    // The node comes back (a fresh repo: the peer provides the snapshot
    // again) and the same command succeeds.
    let daemon = start(2);
    let client = IpfsClient::new(daemon.api(), Duration::from_secs(60));
    assert_eq!(publish(&store_a, &client, &manifest).unwrap(), root);
    let pulled = json_ok(&run(cli(b.path())
        .env("IPFS_API_URL", daemon.api())
        .args(["cache", "pull", &root, "--as", "org/big", "--json"])));
    assert_eq!(pulled["root_cid"], root.as_str());
    assert!(store_b.get(&weights.sha256).is_ok());
    assert!(entries(&tmp).is_empty());
}

#[test]
fn content_that_does_not_match_its_cid_is_rejected() {
    let test = "content_that_does_not_match_its_cid_is_rejected";
    let Some((api, [a, b])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    let a_host = ipfs_node::publish_fixture(&api, a.path(), "bert", "fixtures/bert");
    let (manifest, client) = (&a_host.manifest, &a_host.client);

    // A manifest entry for config.json whose CID names another file: the
    // node answers those other bytes, honestly, for that CID.
    let mut entry = manifest.file("config.json").unwrap().clone();
    let other = manifest.file("vocab.txt").unwrap();
    entry.cid = other.cid.clone();
    let store_b = Store::open(b.path()).unwrap();
    let err = fetch_file(&store_b, client, &entry).unwrap_err();
    assert!(matches!(err, StorageError::ContentMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&entry.sha256), "{err}");
    assert!(!store_b.has(&entry.sha256));
    assert!(!store_b.has(&other.sha256), "rejected bytes are not kept");
    assert!(entries(&b.path().join("tmp")).is_empty());

    // The honest entry is fetched and verified.
    let good = manifest.file("config.json").unwrap();
    let info = fetch_file(&store_b, client, good).unwrap();
    assert_eq!(info.sha256, good.sha256);
    assert!(store_b.get(&good.sha256).is_ok());
}
