//! Two hosts, two real IPFS nodes: host A talks only to node A, host B only
//! to node B, and the nodes are two online js-ipfs daemons connected over
//! TCP on loopback, so a model B loads by CID really travels between them
//! by bitswap (unlike `ipfs_two_hosts.rs`, where both hosts share one
//! offline node). Then the providing node dies mid-transfer: B fails
//! cleanly, its cache holds nothing partial, and the same pull succeeds
//! once A is back.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate::storage::Store;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A host of its own node: the binary in `home`, talking to `node` only.
fn host(node: &ipfs_node::Daemon, home: &Path) -> Command {
    with_ipfs(cli(home), node.api())
}

/// The same, giving up on the node after `secs` seconds without a byte
/// (the default, 30 s, would only make the failures slower).
fn impatient_host(node: &ipfs_node::Daemon, home: &Path, secs: u32) -> Command {
    let mut cmd = host(node, home);
    cmd.env("IPFS_ACCELERATE_IPFS_TIMEOUT", secs.to_string());
    cmd
}

/// The largest file under `dir`, in bytes.
fn largest_file(dir: &Path) -> u64 {
    let mut largest = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                largest = largest.max(meta.len());
            }
        }
    }
    largest
}

#[test]
fn host_b_loads_over_bitswap_what_host_a_published_on_another_node() {
    let test = "host_b_loads_over_bitswap_what_host_a_published_on_another_node";
    let Some(pair) = ipfs_node::online_pair_or_skip(test) else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let model = fixture_model("bert");

    // Host A: import, publish to node A.
    let imported = cache_import(host(&pair.a, a.path()), "fixtures/bert", &model);
    let published = cache(host(&pair.a, a.path()), &["publish", "fixtures/bert"]);
    let root = published["root_cid"].as_str().unwrap().to_owned();
    assert_eq!(imported["root_cid"], root.as_str());

    // Before the nodes are connected, B's node has no way to the blocks
    // (no bootstrap, no MDNS): what B gets later came over the swarm.
    let err = failure(impatient_host(&pair.b, b.path(), 3).args([
        "cache",
        "pull",
        &root,
        "--as",
        "fixtures/bert",
        "--json",
    ]));
    assert!(err.contains("cannot pull"), "{err}");
    assert_eq!(pair.b.bitswap_received().unwrap().0, 0);
    pair.connect().unwrap();

    // Host A embeds from its cache; host B, empty cache, Hub offline,
    // loads the CID through node B.
    let (texts, reference) = bert_reference();
    let from_a = embeddings(&embed(
        host(&pair.a, a.path()),
        "fixtures/bert",
        &texts,
        &[],
    ));
    let model_ref = format!("ipfs://{root}");
    let from_b = embeddings(&embed(host(&pair.b, b.path()), &model_ref, &texts, &[]));
    assert_eq!(from_b, from_a, "same embeddings on both hosts");
    for (got, want) in from_b.iter().zip(&reference) {
        assert!(cosine(got, want) > 0.99999);
    }

    // The bytes came by bitswap: node B received at least the weights.
    let (blocks, bytes) = pair.b.bitswap_received_settled().unwrap();
    assert!(blocks >= 1, "node B received no block");
    eprintln!("node B received {blocks} blocks, {bytes} bytes by bitswap");
    let weights = largest_file(&model);
    assert!(
        bytes >= weights,
        "node B received {bytes} bytes by bitswap, less than the {weights}-byte weights"
    );
    let ls = cache(cli(b.path()), &["ls"]);
    assert_eq!(ls["models"][0]["root_cid"], root.as_str());
    assert!(ls["stats"]["ipfs"]["hits"].as_u64().unwrap() >= 1, "{ls}");
    assert_eq!(ls["stats"]["hub"]["hits"], 0, "{ls}");
    let verify = cache(cli(b.path()), &["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// B's cache after a failed pull: no temp file, no manifest, no blob of
/// the big file, and `cache verify` finds nothing wrong.
fn assert_nothing_partial(home: &Path, weights_sha256: &str) {
    let tmp = home.join("cache/tmp");
    assert!(
        entries(&tmp).is_empty(),
        "temp files left: {:?}",
        entries(&tmp)
    );
    let store = Store::open(home.join("cache")).unwrap();
    assert!(
        store.manifests().unwrap().is_empty(),
        "a manifest was written"
    );
    assert!(
        !store.has(weights_sha256),
        "the partial weights became a blob"
    );
    let verify = cache(cli(home), &["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn providing_node_killed_mid_transfer_fails_cleanly_and_the_pull_resumes_when_it_returns() {
    let test =
        "providing_node_killed_mid_transfer_fails_cleanly_and_the_pull_resumes_when_it_returns";
    let Some(mut pair) = ipfs_node::online_pair_or_skip(test) else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mb = 48;
    let size = (mb * 1024 * 1024) as u64;
    let model = ipfs_node::incompressible_model(pair.dir(), mb);
    cache_import(host(&pair.a, a.path()), "org/big", &model);
    let published = cache(host(&pair.a, a.path()), &["publish", "org/big"]);
    let root = published["root_cid"].as_str().unwrap().to_owned();
    let weights = Store::open(a.path().join("cache"))
        .unwrap()
        .manifest("org/big", "main")
        .unwrap()
        .unwrap()
        .file("model.safetensors")
        .unwrap()
        .sha256
        .clone();
    pair.connect().unwrap();

    // B pulls through node B; node A dies once blocks are flowing.
    let pull_args = ["cache", "pull", &root, "--as", "org/big", "--json"];
    let blocks_before = pair.b.stored_blocks();
    let pull = impatient_host(&pair.b, b.path(), 5)
        .args(pull_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // About 10 of the 48 MiB (40 blocks of 256 KiB), watched on disk:
    // bitswap's own counters lag by a second, time enough for the whole
    // file to arrive.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pair.b.stored_blocks() < blocks_before + 40 {
        assert!(Instant::now() < deadline, "no block reached node B in 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    pair.a.kill();
    let killed_at = Instant::now();
    let out = pull.wait_with_output().unwrap();
    let took = killed_at.elapsed();
    // The counters lag: what B's node really had when A died shows once
    // they settle (nothing more can arrive now).
    let (_, at_kill) = pair.b.bitswap_received_settled().unwrap();
    assert!(
        at_kill < size,
        "the whole file ({at_kill} bytes) had arrived before the kill; the pull ({:?}) said {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mid_transfer = one_line_failure(&out);
    assert!(mid_transfer.contains("cannot pull"), "{mid_transfer}");
    assert!(
        took < Duration::from_secs(30),
        "the pull failed {took:?} after the kill"
    );
    // Node B survives losing its peer mid-`cat` (js-ipfs 0.66 itself
    // would exit: see ipfs_node::CAT_ABORT_FIXES).
    assert!(
        pair.b.is_running(),
        "node B died; log {}",
        pair.b.log().display()
    );
    assert_nothing_partial(b.path(), &weights);

    // Pulling again while A is still down fails the same clean way.
    let while_down = failure(impatient_host(&pair.b, b.path(), 3).args(pull_args));
    assert!(while_down.contains("cannot pull"), "{while_down}");
    assert_nothing_partial(b.path(), &weights);
    let (_, before_restart) = pair.b.bitswap_received_settled().unwrap();

    // A comes back on the same repo (same blocks, peer id and port), B's
    // node dials it again, and the same command succeeds.
    pair.a.restart().unwrap();
    pair.connect().unwrap();
    let pulled = json_of(host(&pair.b, b.path()).args(pull_args));
    assert_eq!(pulled["root_cid"], root.as_str());
    let store = Store::open(b.path().join("cache")).unwrap();
    assert!(store.get(&weights).is_ok(), "the weights are in B's cache");
    assert!(entries(&b.path().join("cache/tmp")).is_empty());
    let verify = cache(cli(b.path()), &["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    // Resumed, not restarted: the blocks node B got before the kill stay
    // in its repo, so A only had to send the rest.
    let (_, after) = pair.b.bitswap_received_settled().unwrap();
    assert!(
        after - before_restart < size,
        "node B fetched {} bytes after A came back: the whole file again",
        after - before_restart
    );
    eprintln!(
        "{size}-byte weights: node B had {at_kill} bytes when A died, {before_restart} after \
         the failed retry, fetched {} more once A was back; the failures read: {mid_transfer} / {while_down}",
        after - before_restart
    );
}
