//! The real IPFS node the tests run against: js-ipfs 0.66.1 (a Kubo RPC
//! implementation) installed by `cargo xtask ipfs-node start` under
//! `target/ipfs-node/`. Shared by xtask (the node `xtask ci` runs) and by
//! tests that need a node of their own (e.g. to kill it mid-transfer).

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The npm package and version that provides the node.
pub const IPFS_PACKAGE: &str = "ipfs@0.66.1";

/// Where `xtask ipfs-node` installs and runs the node.
pub fn node_dir() -> PathBuf {
    crate::workspace_root().join("target").join("ipfs-node")
}

/// The js-ipfs command-line entry point inside an install.
pub fn cli_js(install: &Path) -> PathBuf {
    install.join("node_modules/ipfs/src/cli.js")
}

/// The `Promise.withResolvers` polyfill preloaded into Node 20.
pub fn polyfill(install: &Path) -> PathBuf {
    install.join("polyfill.cjs")
}

/// Whether `install` holds a usable node.
pub fn is_installed(install: &Path) -> bool {
    cli_js(install).is_file() && polyfill(install).is_file()
}

/// A free TCP port on 127.0.0.1 (released before use; a race with another
/// process taking it is possible but shows up as a failed start).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running daemon. Dropping it kills it unless [`Daemon::detach`]ed.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
    api: String,
    repo: PathBuf,
}

impl Daemon {
    /// Starts js-ipfs offline with a fresh repo at `repo` (removed first:
    /// a repo left by a killed daemon fails with "Lock already being
    /// held"), API, gateway and gRPC on free 127.0.0.1 ports, no swarm
    /// addresses (they crash it offline), no bootstrap. Logs go to
    /// `log`. Waits until the API answers, at most `wait`.
    pub fn start(install: &Path, repo: &Path, log: &Path, wait: Duration) -> io::Result<Daemon> {
        if !is_installed(install) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no IPFS node installed in {} (run `cargo xtask ipfs-node start`)",
                    install.display()
                ),
            ));
        }
        match std::fs::remove_dir_all(repo) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(repo.parent().unwrap_or(repo))?;
        let (api_port, gw_port, rpc_port) = (free_port()?, free_port()?, free_port()?);
        let config = serde_json::json!({
            "Addresses": {
                "API": format!("/ip4/127.0.0.1/tcp/{api_port}"),
                "Gateway": format!("/ip4/127.0.0.1/tcp/{gw_port}"),
                "RPC": format!("/ip4/127.0.0.1/tcp/{rpc_port}"),
                "Swarm": [],
                "Announce": [],
                "NoAnnounce": [],
                "Delegates": []
            },
            "Bootstrap": [],
            "Discovery": { "MDNS": { "Enabled": false }, "webRTCStar": { "Enabled": false } }
        });
        let config_path = repo.with_extension("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log_file = std::fs::File::create(log)?;
        let mut cmd = Command::new("node");
        cmd.arg("--require")
            .arg(polyfill(install))
            .arg(cli_js(install))
            .args(["daemon", "--offline", "--init-config"])
            .arg(&config_path)
            .env("IPFS_PATH", repo)
            .current_dir(install)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        #[cfg(unix)]
        {
            // Its own process group: a Ctrl-C aimed at cargo does not take
            // the node down mid-test, and `stop` can end it alone.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn()?;
        let pid = child.id();
        let mut daemon = Daemon {
            child: Some(child),
            pid,
            api: format!("http://127.0.0.1:{api_port}"),
            repo: repo.to_path_buf(),
        };
        let deadline = Instant::now() + wait;
        loop {
            if let Some(child) = daemon.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    let tail = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(io::Error::other(format!(
                        "IPFS daemon exited ({status}) during start; log {}:\n{}",
                        log.display(),
                        tail.lines()
                            .rev()
                            .take(15)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n")
                    )));
                }
            }
            let ready = std::fs::read_to_string(log).is_ok_and(|l| l.contains("Daemon is ready"));
            if ready && answers(&daemon.api) {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "IPFS daemon not ready after {wait:?}; log {}",
                        log.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:40123`.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The repo folder.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Leave the daemon running after this handle is dropped.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }

    /// Kill it now (SIGKILL: the way a crash looks) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Kubo RPC API answers `version` at `api` (about a second).
pub fn answers(api: &str) -> bool {
    let client = ipfs_accelerate_storage::IpfsClient::new(api, Duration::from_secs(2));
    client.version().is_ok()
}

/// The node `cargo xtask ipfs-node start` (or `xtask ci`) runs: the
/// `IPFS_API_URL` it exported, else the URL in `target/ipfs-node/api`,
/// if it answers.
pub fn shared_api() -> Option<String> {
    let url = std::env::var("IPFS_API_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| std::fs::read_to_string(node_dir().join("api")).ok())
        .map(|u| u.trim().trim_end_matches('/').to_owned())?;
    answers(&url).then_some(url)
}

/// [`shared_api`], or `None` after reporting the skip of `test`.
pub fn shared_api_or_skip(test: &str) -> Option<String> {
    crate::or_skip(
        shared_api(),
        test,
        "no IPFS node answers (run `cargo xtask ipfs-node start` or set IPFS_API_URL)",
    )
}

/// The shared node's API and `N` empty host folders (two cache roots on
/// one machine stand for two hosts), or `None` after reporting the skip of
/// `test` when no node answers.
#[cfg(feature = "harness")]
pub fn node_and_hosts<const N: usize>(test: &str) -> Option<(String, [tempfile::TempDir; N])> {
    let api = shared_api_or_skip(test)?;
    Some((
        api,
        std::array::from_fn(|_| tempfile::tempdir().expect("a temp folder")),
    ))
}

/// A model host: its store, a snapshot imported into it and published to a
/// node, and the client that published it.
#[derive(Debug)]
pub struct Published {
    /// The host's store.
    pub store: ipfs_accelerate_storage::Store,
    /// The imported snapshot.
    pub manifest: ipfs_accelerate_storage::Manifest,
    /// A client of the node, with a 30 s timeout.
    pub client: ipfs_accelerate_storage::IpfsClient,
    /// The snapshot's root CID, as published.
    pub root: String,
}

/// Imports fixture `fixture` as `id@main` into a store at `root` and
/// publishes it to the node at `api`.
pub fn publish_fixture(api: &str, root: &Path, fixture: &str, id: &str) -> Published {
    let store = ipfs_accelerate_storage::Store::open(root).expect("the store opens");
    let manifest = store
        .import_dir(&crate::fixture_model(fixture), id, "main")
        .expect("the fixture imports");
    let client = ipfs_accelerate_storage::IpfsClient::new(api, Duration::from_secs(30));
    let root = ipfs_accelerate_storage::ipfs::publish(&store, &client, &manifest)
        .expect("the snapshot publishes");
    Published {
        store,
        manifest,
        client,
        root,
    }
}
