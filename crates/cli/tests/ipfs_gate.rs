//! With `IPFS_KIT_DISABLE=1` or `STORAGE_FORCE_LOCAL=1` no request reaches
//! the IPFS node. The "node" here is a TCP listener that counts
//! connections: any request at all, whatever its shape, is one.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts connections to a local port until dropped.
struct Counter {
    url: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    // Closing at once makes the client fail fast.
                    Ok((conn, _)) => {
                        h.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Counter { url, hits, stop }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn gate_variables_keep_every_request_away_from_the_node() {
    let counter = Counter::start();
    let home = tempfile::tempdir().unwrap();
    let imported = cache_import(cli(home.path()), "fixtures/bert", &fixture_model("bert"));
    let root = imported["root_cid"].as_str().unwrap();

    for (var, why) in [
        ("IPFS_KIT_DISABLE", "IPFS_KIT_DISABLE"),
        ("STORAGE_FORCE_LOCAL", "STORAGE_FORCE_LOCAL"),
    ] {
        let gated = || {
            let mut cmd = with_ipfs(cli(home.path()), &counter.url);
            cmd.env(var, "1");
            cmd
        };
        let status = json_of(gated().args(["status", "--json"]));
        assert_eq!(status["storage"]["mode"], "local", "{var}");

        let err = failure(gated().args(["cache", "publish", "fixtures/bert", "--json"]));
        assert!(err.contains(why), "{var}: {err}");
        let err = failure(gated().args(["cache", "pull", root, "--as", "x/y", "--json"]));
        assert!(err.contains(why), "{var}: {err}");
        // The imported snapshot is served from the cache; an unknown CID
        // is not looked for on the node.
        let local = embed(gated(), format!("ipfs://{root}"), &["hello"], &[]);
        assert_eq!(local["dim"], 32);
        let unknown = "ipfs://QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";
        let err = failure_of(gated(), "embed", Path::new(unknown), &["hello"]);
        assert!(err.contains(why), "{var}: {err}");
        assert_eq!(counter.hits(), 0, "{var}: a request reached the node");
    }

    // The same commands without the gate do reach it (so the count above
    // means something).
    let mut open = with_ipfs(cli(home.path()), &counter.url);
    failure(open.args(["cache", "pull", root, "--as", "x/y", "--json"]));
    assert!(counter.hits() > 0);
}
